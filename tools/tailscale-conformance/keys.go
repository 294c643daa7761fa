// Auth keys as the provider's TailnetKey uses them (CreateAuthKey, Get, Delete) and DNS
// preferences as DnsPreferences does.
package main

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"tailscale.com/client/tailscale/v2"
)

const keyExpiry = time.Hour

// keyFields are what TailnetKey reads of a key (resource_tailnet_key.go: Read, Create).
var keyFields = concat(
	fields("string", "id", "keyType", "description", "created", "expires", "userId"),
	fields("bool", "invalid", "capabilities.devices.create.reusable",
		"capabilities.devices.create.ephemeral", "capabilities.devices.create.preauthorized"),
	fields("array", "capabilities.devices.create.tags"),
	fields("number", "expirySeconds"),
)

func (r *run) wantedCapabilities() tailscale.KeyCapabilities {
	var caps tailscale.KeyCapabilities
	caps.Devices.Create.Reusable = true
	caps.Devices.Create.Preauthorized = true
	caps.Devices.Create.Tags = []string{r.cfg.tag}
	return caps
}

// sameKey compares what the provider keeps in state from a key with what was asked.
func (r *run) sameKey(key *tailscale.Key) error {
	if key.KeyType != "auth" {
		return fmt.Errorf("keyType %q; the provider refuses anything but \"auth\"", key.KeyType)
	}
	if want := r.wantedCapabilities(); !reflect.DeepEqual(key.Capabilities, want) {
		return fmt.Errorf("capabilities %+v; want %+v", key.Capabilities, want)
	}
	// The client decodes expirySeconds into a *time.Duration; the provider reads it back as
	// seconds (Int64PointerValue((*int64)(key.ExpirySeconds))).
	if key.ExpirySeconds == nil || int64(*key.ExpirySeconds) != int64(keyExpiry.Seconds()) {
		return fmt.Errorf("expirySeconds %v; want %d", key.ExpirySeconds, int64(keyExpiry.Seconds()))
	}
	if lifetime := key.Expires.Sub(key.Created); lifetime < keyExpiry-time.Minute || lifetime > keyExpiry+time.Minute {
		return fmt.Errorf("expires %s is %s after created %s; want %s", key.Expires, lifetime, key.Created, keyExpiry)
	}
	return nil
}

func (r *run) authKeys() *tailscale.Key {
	keys := r.api.Keys()
	var key *tailscale.Key
	request := tailscale.CreateKeyRequest{
		Capabilities:  r.wantedCapabilities(),
		ExpirySeconds: int64(keyExpiry.Seconds()),
		Description:   "coral-infra conformance run",
	}
	r.check("keys.create", func() error {
		created, err := keys.CreateAuthKey(r.ctx, request)
		if err != nil {
			return err
		}
		if err := r.conformLast(&tailscale.Key{}, concat(keyFields, fields("string", "key"))); err != nil {
			return err
		}
		if created.Key == "" || created.Invalid {
			return fmt.Errorf("a new key must come with its secret and be valid (invalid=%v)", created.Invalid)
		}
		if created.Description != request.Description {
			return fmt.Errorf("description %q; want %q", created.Description, request.Description)
		}
		key = created
		return r.sameKey(created)
	})
	r.check("keys.create.unowned-tag.400", func() error {
		unowned := request
		unowned.Capabilities.Devices.Create.Tags = []string{"tag:conformance-unowned"}
		apiErr, err := r.conformError(func() error { _, err := keys.CreateAuthKey(r.ctx, unowned); return err }(), 400)
		if err != nil {
			return err
		}
		want := "requested tags [tag:conformance-unowned] are invalid or not permitted"
		if apiErr.Message != want {
			return fmt.Errorf("message %q; want %q", apiErr.Message, want)
		}
		return nil
	})
	if key == nil {
		r.skip("no key was created", "keys.get")
		return nil
	}
	r.check("keys.get", func() error {
		read, err := keys.Get(r.ctx, key.ID)
		if err != nil {
			return err
		}
		if err := r.conformLast(&tailscale.Key{}, keyFields); err != nil {
			return err
		}
		if read.Key != "" {
			return errors.New("reading a key returned its secret; only its creation may")
		}
		if read.ID != key.ID || read.Invalid || !read.Revoked.IsZero() {
			return fmt.Errorf("id %q invalid=%v revoked=%s; want %q, valid, not revoked", read.ID, read.Invalid, read.Revoked, key.ID)
		}
		return r.sameKey(read)
	})
	return key
}

func (r *run) deletedKey(key *tailscale.Key) {
	keys := r.api.Keys()
	if key == nil {
		r.skip("no key was created", "keys.delete", "keys.deleted.get")
	} else if r.check("keys.delete", func() error { return keys.Delete(r.ctx, key.ID) }) {
		r.check("keys.deleted.get", func() error {
			// publicapi/tailnet.md, Get key: a revoked (deleted) key reads with `revoked`
			// and `invalid: true`; TailnetKey recreates it (recreate_if_invalid).
			read, err := keys.Get(r.ctx, key.ID)
			if err != nil {
				return err
			}
			if err := r.conformLast(&tailscale.Key{}, concat(keyFields, fields("string", "revoked"))); err != nil {
				return err
			}
			if !read.Invalid || read.Revoked.IsZero() {
				return fmt.Errorf("invalid=%v revoked=%s; want invalid and revoked", read.Invalid, read.Revoked)
			}
			return nil
		})
	}
	unknown := "kConformanceUnknownCNTRL"
	r.check("keys.unknown.get.404", func() error {
		_, err := keys.Get(r.ctx, unknown)
		_, err = r.conformError(err, 404)
		return err
	})
	r.check("keys.unknown.delete.404", func() error {
		_, err := r.conformError(keys.Delete(r.ctx, unknown), 404)
		return err
	})
}

func (r *run) dnsPreferences() {
	dns := r.api.DNS()
	read := func() (bool, error) {
		prefs, err := dns.Preferences(r.ctx)
		if err != nil {
			return false, err
		}
		return prefs.MagicDNS, r.conformLast(&tailscale.DNSPreferences{}, fields("bool", "magicDNS"))
	}
	var initial bool
	if !r.check("dns.preferences.get", func() (err error) {
		initial, err = read()
		return err
	}) {
		r.skip("the DNS preferences cannot be read", "dns.preferences.set")
		return
	}
	r.check("dns.preferences.set", func() error {
		var steps []string
		for _, magicDNS := range []bool{!initial, initial} {
			if err := dns.SetPreferences(r.ctx, tailscale.DNSPreferences{MagicDNS: magicDNS}); err != nil {
				return err
			}
			got, err := read()
			if err != nil {
				return err
			}
			steps = append(steps, fmt.Sprintf("set %v, read %v", magicDNS, got))
			if got != magicDNS {
				return errors.New(strings.Join(steps, "; "))
			}
		}
		return nil
	})
}
