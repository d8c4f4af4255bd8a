package ratelimit

import "time"

// Limits of password guesses. A lock per account alone lets anyone keep a
// person (or the admin) out by guessing wrong on purpose; so the delays
// are per account and address, and a correct password from elsewhere
// still works. An address that sprays guesses over many accounts meets
// the cap per address.
var (
	// passwordBackoff: five wrong passwords for an account from an address
	// cost nothing, then the next try from there waits 1 s, 2 s, 4 s, …
	// up to 5 minutes; an hour without a wrong one starts again.
	passwordBackoff = BackoffPolicy{Free: 5, First: time.Second, Max: 5 * time.Minute, Forget: time.Hour}
	// Wrong passwords per address, over all accounts: 50 at once (a room
	// behind one address makes typos), then 10 a minute.
	passwordsPerAddress, passwordsPerAddressRate = 50.0, 10.0 / 60
)

// Passwords limits the password checks of the login page and the OAuth
// password grant alike.
type Passwords struct {
	pairs   *Backoff // by account and address
	address *Limiter
}

// NewPasswords returns the limits of passwordBackoff and the cap per
// address.
func NewPasswords(clock Clock) *Passwords {
	return &Passwords{pairs: NewBackoff(clock, passwordBackoff),
		address: New(clock, passwordsPerAddress, passwordsPerAddressRate)}
}

// Attempt asks to check a password of account from address: nil, or a
// *Refused saying how long to wait. An attempt counts as a failure from
// the start, so that guesses sent in parallel are counted as they come,
// until Succeeded takes it back.
func (p *Passwords) Attempt(account, address string) error {
	if d := p.address.Take(address); d > 0 {
		return Refuse(d, "Too many wrong passwords from your address")
	}
	if d := p.pairs.Try(account + "\x00" + address); d > 0 {
		// Not checked, so not a guess against the address's cap.
		p.address.Refund(address)
		return Refuse(d, "Too many wrong passwords for this account from your address")
	}
	return nil
}

// Succeeded takes back an attempt whose password was right, and forgets
// the account's failures from that address.
func (p *Passwords) Succeeded(account, address string) {
	p.pairs.Reset(account + "\x00" + address)
	p.address.Refund(address)
}
