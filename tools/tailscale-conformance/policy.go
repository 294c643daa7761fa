// The policy file, as the provider's Acl resource and get_acl use it (Raw to read, Set with
// and without If-Match to write, Set("") to reset), plus Validate and the error answers.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/tailscale/hujson"
	"tailscale.com/client/tailscale/v2"
)

func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// testPolicy is a HuJSON policy (comments, trailing commas) owning the tag, letting the owner
// SSH as root, with self-tests; with memberMaySSH its sshTests expect what the rules deny.
func (r *run) testPolicy(note string, memberMaySSH bool) string {
	tag, owner, member := js(r.cfg.tag), js(r.cfg.owner), js(r.cfg.member)
	memberExpects := "deny"
	if memberMaySSH {
		memberExpects = "accept"
	}
	return fmt.Sprintf(`// coral-infra conformance run: %s
{
	"tagOwners": {%s: [%s]},
	"acls": [
		// The owner reaches the machine's SSH port.
		{"action": "accept", "src": [%s], "dst": [%s]},
	],
	"ssh": [{"action": "accept", "src": [%s], "dst": [%s], "users": ["root"]}],
	"sshTests": [
		{"src": %s, "dst": [%s], "accept": ["root"]},
		{"src": %s, "dst": [%s], %q: ["root"]},
	],
}
`, note, tag, owner, owner, js(r.cfg.tag+":22"), owner, tag, owner, tag, member, tag, memberExpects)
}

func quotedETag(etag string) error {
	if len(etag) < 3 || !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) {
		return fmt.Errorf("ETag %q is not a quoted entity tag", etag)
	}
	return nil
}

func sameDocument(hujsonText string, jsonBody []byte) error {
	standard, err := hujson.Standardize([]byte(hujsonText))
	if err != nil {
		return fmt.Errorf("the HuJSON policy does not parse: %v", err)
	}
	var fromHuJSON, fromJSON any
	if err := json.Unmarshal(standard, &fromHuJSON); err != nil {
		return err
	}
	if err := json.Unmarshal(jsonBody, &fromJSON); err != nil {
		return fmt.Errorf("the JSON policy is not JSON: %v", err)
	}
	if !reflect.DeepEqual(fromHuJSON, fromJSON) {
		return fmt.Errorf("the JSON policy %s is not the HuJSON one", truncate(jsonBody))
	}
	return nil
}

func (r *run) rawPolicy() (*tailscale.RawACL, error) {
	raw, err := r.api.PolicyFile().Raw(r.ctx)
	if err != nil {
		return nil, err
	}
	if err := quotedETag(raw.ETag); err != nil {
		return nil, err
	}
	return raw, nil
}

// samePolicy requires the live policy to be text, comments included.
func (r *run) samePolicy(text, why string) error {
	raw, err := r.rawPolicy()
	if err != nil {
		return err
	}
	if raw.HuJSON != text {
		return fmt.Errorf("%s: the policy reads back as %q", why, truncate([]byte(raw.HuJSON)))
	}
	return nil
}

func (r *run) policyFile() {
	pf := r.api.PolicyFile()
	var initial, written *tailscale.RawACL
	if !r.check("policy.get.hujson", func() error {
		raw, err := r.rawPolicy()
		if err != nil {
			return err
		}
		if ct := r.wire.lastExchange().header.Get("Content-Type"); !strings.HasPrefix(ct, "application/hujson") {
			return fmt.Errorf("Content-Type %q; want application/hujson", ct)
		}
		if _, err := hujson.Standardize([]byte(raw.HuJSON)); err != nil {
			return fmt.Errorf("not HuJSON: %v", err)
		}
		initial = raw
		return nil
	}) {
		r.skip("the policy file cannot be read", "policy.get.json", "policy.set.ts-default",
			"policy.set.ts-default.412", "policy.get.hujson.verbatim", "policy.set.if-match.stale.412",
			"policy.set.if-match.current", "policy.set.blind", "policy.set.unparseable.400",
			"policy.set.failing-tests.400", "policy.validate.passing", "policy.validate.failing-tests",
			"policy.validate.unparseable", "policy.reset", "policy.set.final")
		return
	}
	r.check("policy.get.json", func() error {
		acl, err := pf.Get(r.ctx)
		if err != nil {
			return err
		}
		// A new tailnet's policy is Tailscale's own: every field of it is one the client
		// knows. (A user's policy is content, not API shape: the client's ACL type has no
		// sshTests, so it is compared with its HuJSON text instead.)
		if err := r.conformLast(&tailscale.ACL{}, nil); err != nil {
			return err
		}
		if acl.ETag != initial.ETag {
			return fmt.Errorf("ETag %q as JSON, %q as HuJSON", acl.ETag, initial.ETag)
		}
		return sameDocument(initial.HuJSON, r.wire.lastExchange().body)
	})

	first := r.testPolicy("first write", false)
	second := r.testPolicy("second write", false)
	failing := r.testPolicy("a member may SSH as root", true)
	r.check("policy.set.ts-default", func() error {
		if err := pf.Set(r.ctx, first, "ts-default"); err != nil {
			return err
		}
		return r.samePolicy(first, "written with If-Match \"ts-default\"")
	})
	r.check("policy.set.ts-default.412", func() error {
		_, err := r.conformError(pf.Set(r.ctx, second, "ts-default"), 412)
		return err
	})
	r.check("policy.get.hujson.verbatim", func() error {
		raw, err := r.rawPolicy()
		if err != nil {
			return err
		}
		if raw.HuJSON != first {
			return fmt.Errorf("comments or layout not kept: %q", truncate([]byte(raw.HuJSON)))
		}
		if raw.ETag == initial.ETag {
			return fmt.Errorf("the ETag %s did not change with the policy", raw.ETag)
		}
		written = raw
		return nil
	})
	r.check("policy.set.if-match.stale.412", func() error {
		_, err := r.conformError(pf.Set(r.ctx, second, initial.ETag), 412)
		return err
	})
	r.check("policy.set.if-match.current", func() error {
		if written == nil {
			return errors.New("not run: no ETag of the written policy")
		}
		if err := pf.Set(r.ctx, second, written.ETag); err != nil {
			return err
		}
		return r.samePolicy(second, "written with If-Match of its ETag")
	})
	r.check("policy.set.blind", func() error {
		if err := pf.Set(r.ctx, first, ""); err != nil {
			return err
		}
		return r.samePolicy(first, "written without If-Match")
	})
	r.check("policy.set.unparseable.400", func() error {
		_, err := r.conformError(pf.Set(r.ctx, `{"acls": [`, ""), 400)
		return err
	})
	r.check("policy.set.failing-tests.400", func() error {
		apiErr, err := r.conformError(pf.Set(r.ctx, failing, ""), 400)
		if err != nil {
			return err
		}
		if apiErr.Message != "test(s) failed" {
			return fmt.Errorf("message %q; want \"test(s) failed\"", apiErr.Message)
		}
		if len(apiErr.Data) != 1 || apiErr.Data[0].User != r.cfg.member || len(apiErr.Data[0].Errors) == 0 {
			return fmt.Errorf("data %+v; want the failures under the failing test's src %s", apiErr.Data, r.cfg.member)
		}
		return r.samePolicy(first, "a refused write changed the policy")
	})
	r.check("policy.validate.passing", func() error {
		return pf.Validate(r.ctx, first)
	})
	r.check("policy.validate.failing-tests", func() error {
		err := pf.Validate(r.ctx, failing)
		if err == nil {
			return errors.New("a policy whose tests fail validated")
		}
		var apiErr tailscale.APIError
		if errors.As(err, &apiErr) {
			return fmt.Errorf("answered %d; validation answers 200 with the failures in the body", apiErr.Status)
		}
		want := "ACL validation failed: test(s) failed; [{" + r.cfg.member + " ["
		if !strings.HasPrefix(err.Error(), want) {
			return fmt.Errorf("the client reports %q; want it to start with %q", err, want)
		}
		return nil
	})
	r.check("policy.validate.unparseable", func() error {
		err := pf.Validate(r.ctx, "{ not a policy")
		if err == nil || !strings.HasPrefix(err.Error(), "ACL validation failed: ") {
			return fmt.Errorf("the client reports %v; want \"ACL validation failed: ...\"", err)
		}
		return nil
	})
	r.check("policy.reset", func() error {
		// The provider's reset_acl_on_destroy: Set(ctx, "", "").
		if err := pf.Set(r.ctx, "", ""); err != nil {
			return err
		}
		return r.samePolicy(initial.HuJSON, "reset is not the default policy")
	})
	r.check("policy.set.final", func() error {
		if err := pf.Set(r.ctx, first, ""); err != nil {
			return err
		}
		return r.samePolicy(first, "the policy the keys need")
	})
}
