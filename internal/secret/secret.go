// Package secret makes the random values the portal hands out (tokens,
// passwords, generated names) and the hashes it stores instead of them.
// Everything comes from crypto/rand: Educates drew activation tokens and
// passwords with random.sample, which is neither a CSPRNG nor uniform.
package secret

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
)

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// Alnum returns n characters drawn uniformly from [A-Za-z0-9]: the
// alphabet and length of Educates' tokens, so clients that check them keep
// working.
func Alnum(n int) string {
	b := make([]byte, n)
	var buf [1]byte
	for i := range b {
		for {
			rand.Read(buf[:])
			// 248 = 4 * 62: reject the rest to avoid modulo bias.
			if buf[0] < 248 {
				b[i] = alnum[int(buf[0])%len(alnum)]
				break
			}
		}
	}
	return string(b)
}

// Token returns a bearer token: 32 random bytes, URL-safe.
func Token() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Hash is how tokens are stored. Tokens carry at least 190 bits of
// randomness, so a fast hash suffices (no salt or stretching needed).
func Hash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// UUID returns a random (version 4) UUID.
func UUID() string {
	var u [16]byte
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:])
}
