package broker

import "context"

// Lead takes or renews the reconciler lease as Run does, for tests of the
// lease between replicas.
func (b *Broker) Lead(ctx context.Context) (int64, error) { return b.lead(ctx) }
