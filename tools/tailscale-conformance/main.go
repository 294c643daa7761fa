// Command tailscale-conformance drives a Tailscale API (our stand-in, standins/tailscale_api.py)
// with Tailscale's own Go client, tailscale.com/client/tailscale/v2 — the client the
// pulumi-tailscale provider (terraform-provider-tailscale) calls — through every call the
// provider makes for coral-infra: the policy file, auth keys, devices and DNS preferences,
// and the error answers the provider depends on.
//
// Each response must decode into the client's types with no unknown field and with the
// fields the client and the provider read (wire.go); each error must surface as the client's
// APIError with the right status. The run prints one line per check on stderr and a JSON
// report on stdout; it exits 1 when a check failed, 2 on bad flags.
//
// A device is needed for the device calls: the run mints an auth key, writes it to
// -authkey-file (mode 0600) and waits up to -device-wait for a device with -hostname to
// join with it, as get_device's wait_for does. It then deletes that device and the key.
// Use it against a test tailnet only.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"tailscale.com/client/tailscale/v2"
)

const clientModule = "tailscale.com/client/tailscale/v2"

type config struct {
	baseURL      *url.URL
	apiKey       string
	tailnet      string
	tag          string
	owner        string
	member       string
	hostname     string
	authKeyFile  string
	deviceWait   time.Duration
	scopedID     string
	scopedSecret string
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("tailscale-conformance", flag.ContinueOnError)
	var cfg config
	var baseURL string
	fs.StringVar(&baseURL, "base-url", "", "the API's base URL (required), e.g. http://127.0.0.1:8080")
	fs.StringVar(&cfg.apiKey, "api-key", os.Getenv("TAILSCALE_API_KEY"), "an API access token (default $TAILSCALE_API_KEY)")
	fs.StringVar(&cfg.tailnet, "tailnet", "-", "the tailnet")
	fs.StringVar(&cfg.tag, "tag", "", "a tag the test policy owns and the auth key carries (required)")
	fs.StringVar(&cfg.owner, "owner", "", "login of a tailnet owner, who owns -tag (required)")
	fs.StringVar(&cfg.member, "member", "", "login of a plain member, denied SSH as root (required)")
	fs.StringVar(&cfg.hostname, "hostname", "", "hostname of the device that joins with the minted key (required)")
	fs.StringVar(&cfg.authKeyFile, "authkey-file", "", "where to write the minted auth key (required)")
	fs.DurationVar(&cfg.deviceWait, "device-wait", time.Minute, "how long to wait for the device to join")
	fs.StringVar(&cfg.scopedID, "scoped-oauth-client-id", "", "an OAuth client with only devices:core:read (required)")
	fs.StringVar(&cfg.scopedSecret, "scoped-oauth-client-secret", os.Getenv("CONFORMANCE_OAUTH_CLIENT_SECRET"),
		"its secret (default $CONFORMANCE_OAUTH_CLIENT_SECRET)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	for name, value := range map[string]string{
		"base-url": baseURL, "api-key": cfg.apiKey, "tag": cfg.tag, "owner": cfg.owner,
		"member": cfg.member, "hostname": cfg.hostname, "authkey-file": cfg.authKeyFile,
		"scoped-oauth-client-id": cfg.scopedID, "scoped-oauth-client-secret": cfg.scopedSecret,
	} {
		if value == "" {
			return cfg, fmt.Errorf("-%s is required", name)
		}
	}
	parsed, err := url.Parse(baseURL)
	if err != nil || parsed.Scheme == "" || parsed.Host == "" {
		return cfg, fmt.Errorf("-base-url %q is not an http(s) URL", baseURL)
	}
	cfg.baseURL = parsed
	return cfg, nil
}

type check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

type report struct {
	Client  string  `json:"client"`
	BaseURL string  `json:"baseUrl"`
	Checks  []check `json:"checks"`
	Failed  int     `json:"failed"`
}

// run holds the client under test and the report being written.
type run struct {
	ctx    context.Context
	cfg    config
	api    *tailscale.Client
	wire   *recorder
	report report
}

// client builds a client like the provider does: base URL, tailnet, the recorder as transport.
func (r *run) client(apiKey string, auth tailscale.Auth) *tailscale.Client {
	return &tailscale.Client{
		BaseURL:   r.cfg.baseURL,
		Tailnet:   r.cfg.tailnet,
		APIKey:    apiKey,
		Auth:      auth,
		UserAgent: "coral-infra-conformance",
		HTTP:      &http.Client{Timeout: time.Minute, Transport: r.wire},
	}
}

// check runs one named check and records its outcome.
func (r *run) check(name string, fn func() error) bool {
	err := fn()
	c := check{Name: name, OK: err == nil}
	if err != nil {
		c.Detail = err.Error()
		r.report.Failed++
		fmt.Fprintf(os.Stderr, "FAIL %s: %s\n", name, c.Detail)
	} else {
		fmt.Fprintf(os.Stderr, "ok   %s\n", name)
	}
	r.report.Checks = append(r.report.Checks, c)
	return err == nil
}

// skip records checks that could not run because an earlier one failed.
func (r *run) skip(reason string, names ...string) {
	for _, name := range names {
		r.check(name, func() error { return fmt.Errorf("not run: %s", reason) })
	}
}

// conformLast checks the last response body against the client's type and required fields.
func (r *run) conformLast(into any, required []field) error {
	ex := r.wire.lastExchange()
	if err := conform(ex.body, into, required); err != nil {
		return fmt.Errorf("%s %s: %w", ex.method, ex.path, err)
	}
	return nil
}

// apiError requires err to be the client's APIError with status; it returns the error.
func apiError(err error, status int) (tailscale.APIError, error) {
	var apiErr tailscale.APIError
	if err == nil {
		return apiErr, fmt.Errorf("succeeded; want the API error %d", status)
	}
	if !errors.As(err, &apiErr) {
		return apiErr, fmt.Errorf("got %T %q; want the client's APIError with status %d", err, err, status)
	}
	if apiErr.Status != status {
		return apiErr, fmt.Errorf("got status %d (%q); want %d", apiErr.Status, apiErr.Message, status)
	}
	if apiErr.Message == "" {
		return apiErr, fmt.Errorf("status %d without a message", status)
	}
	return apiErr, nil
}

// conformError checks that the last error body decodes strictly into the client's APIError.
func (r *run) conformError(err error, status int) (tailscale.APIError, error) {
	apiErr, problem := apiError(err, status)
	if problem != nil {
		return apiErr, problem
	}
	var decoded tailscale.APIError
	return apiErr, r.conformLast(&decoded, fields("string", "message"))
}

func clientVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == clientModule {
				return clientModule + " " + dep.Version
			}
		}
	}
	return clientModule + " (version unknown)"
}

func writeSecret(path, secret string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".authkey-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	if _, err := tmp.WriteString(secret); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "tailscale-conformance:", err)
		}
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute+cfg.deviceWait)
	defer cancel()
	r := &run{
		ctx:    ctx,
		cfg:    cfg,
		wire:   &recorder{base: http.DefaultTransport},
		report: report{Client: clientVersion(), BaseURL: cfg.baseURL.String(), Checks: []check{}},
	}
	r.api = r.client(cfg.apiKey, nil)
	fmt.Fprintf(os.Stderr, "tailscale-conformance: %s against %s\n", r.report.Client, r.report.BaseURL)

	r.policyFile()
	r.dnsPreferences()
	key := r.authKeys()
	r.devices(key)
	r.deletedKey(key)
	r.credentials()

	out := json.NewEncoder(os.Stdout)
	out.SetIndent("", "  ")
	if err := out.Encode(r.report); err != nil {
		fmt.Fprintln(os.Stderr, "tailscale-conformance: writing the report:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "tailscale-conformance: %d checks, %d failed\n", len(r.report.Checks), r.report.Failed)
	if r.report.Failed > 0 {
		os.Exit(1)
	}
}
