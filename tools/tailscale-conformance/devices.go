// Devices as get_device/get_devices find them (List with a hostname or name filter, the
// first match) and as DeviceAuthorization, DeviceKey and DeviceTags change them; then the
// 404s the provider meets once a device is gone.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"tailscale.com/client/tailscale/v2"
)

// deviceFields are the default-field-set attributes of a device (publicapi/device.md) that
// get_device copies into its result (model_device.go, toDeviceDataSourceModel), and
// isEphemeral and connectedToControl, present on every device of the client's testdata.
var deviceFields = concat(
	fields("string", "id", "nodeId", "user", "name", "hostname", "clientVersion", "os",
		"created", "expires", "machineKey", "nodeKey"),
	fields("bool", "authorized", "updateAvailable", "keyExpiryDisabled", "isExternal",
		"blocksIncomingConnections", "connectedToControl", "isEphemeral"),
	fields("array", "addresses"),
)

// deviceProblems checks one device object: the fields, and lastSeen only while it is not
// connected (the client: "Will be nil if ConnectedToControl is true").
func deviceProblems(obj map[string]any) []string {
	problems := missing(obj, deviceFields)
	lastSeen, hasLastSeen := obj["lastSeen"]
	connected, _ := obj["connectedToControl"].(bool)
	switch {
	case connected && hasLastSeen:
		problems = append(problems, "lastSeen on a device connected to control")
	case !connected && kindOf(lastSeen) != "string":
		problems = append(problems, "no lastSeen on a device not connected to control")
	}
	if tags, ok := obj["tags"]; ok && kindOf(tags) != "array" {
		problems = append(problems, fmt.Sprintf("tags is %s, want array", kindOf(tags)))
	}
	return problems
}

// conformDevices checks the last answer: a list of devices or (single) one device.
func (r *run) conformDevices(single bool) error {
	ex := r.wire.lastExchange()
	var problems []string
	var objects []map[string]any
	if single {
		if err := conform(ex.body, &tailscale.Device{}, nil); err != nil {
			problems = append(problems, err.Error())
		}
		var obj map[string]any
		if json.Unmarshal(ex.body, &obj) == nil {
			objects = append(objects, obj)
		}
	} else {
		var list struct {
			Devices []tailscale.Device `json:"devices"`
		}
		if err := conform(ex.body, &list, fields("array", "devices")); err != nil {
			problems = append(problems, err.Error())
		}
		var raw struct {
			Devices []map[string]any `json:"devices"`
		}
		if json.Unmarshal(ex.body, &raw) == nil {
			objects = raw.Devices
		}
	}
	for _, obj := range objects {
		for _, p := range deviceProblems(obj) {
			problems = append(problems, fmt.Sprintf("device %v: %s", obj["nodeId"], p))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s %s: %s", ex.method, ex.path, strings.Join(problems, "; "))
	}
	return nil
}

func nodeIDs(devices []tailscale.Device) []string {
	ids := []string{}
	for _, d := range devices {
		ids = append(ids, d.NodeID)
	}
	return ids
}

// waitForDevice polls like get_device with wait_for: List(WithFilter("hostname", ...)) each
// second, taking the first device.
func (r *run) waitForDevice() (*tailscale.Device, error) {
	deadline := time.Now().Add(r.cfg.deviceWait)
	for {
		devices, err := r.api.Devices().List(r.ctx, tailscale.WithFilter("hostname", []string{r.cfg.hostname}))
		if err == nil && len(devices) > 0 {
			if err := r.conformDevices(false); err != nil {
				return nil, err
			}
			for _, d := range devices {
				if d.Hostname != r.cfg.hostname {
					return nil, fmt.Errorf("the hostname filter listed %q (%s)", d.Hostname, d.NodeID)
				}
			}
			return &devices[0], nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("no device with hostname %q after %s", r.cfg.hostname, r.cfg.deviceWait)
			}
			return nil, err
		}
		select {
		case <-r.ctx.Done():
			return nil, r.ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func (r *run) getDevice(id string) (*tailscale.Device, error) {
	device, err := r.api.Devices().Get(r.ctx, id)
	if err != nil {
		return nil, err
	}
	return device, r.conformDevices(true)
}

var deviceChecks = []string{
	"devices.list", "devices.list.filter.name", "devices.list.filter.no-match", "devices.get",
	"devices.get.legacy-id", "devices.authorize", "devices.key-expiry", "devices.tags",
	"devices.tags.unowned.400", "devices.delete", "devices.deleted.get.404",
	"devices.deleted.authorize.404", "devices.deleted.key.404", "devices.deleted.tags.404",
}

func (r *run) devices(key *tailscale.Key) {
	api := r.api.Devices()
	if key == nil {
		r.skip("no auth key to join with", append([]string{"devices.wait"}, deviceChecks...)...)
		return
	}
	var device *tailscale.Device
	if !r.check("devices.wait", func() error {
		if err := writeSecret(r.cfg.authKeyFile, key.Key); err != nil {
			return fmt.Errorf("writing the auth key: %v", err)
		}
		var err error
		device, err = r.waitForDevice()
		return err
	}) {
		r.skip("no device joined", deviceChecks...)
		return
	}
	id := device.NodeID
	r.check("devices.list", func() error {
		devices, err := api.List(r.ctx)
		if err != nil {
			return err
		}
		if err := r.conformDevices(false); err != nil {
			return err
		}
		for _, d := range devices {
			if d.NodeID == id {
				return nil
			}
		}
		return fmt.Errorf("%s is not in the list %v", id, nodeIDs(devices))
	})
	r.check("devices.list.filter.name", func() error {
		devices, err := api.List(r.ctx, tailscale.WithFilter("name", []string{device.Name}))
		if err != nil {
			return err
		}
		if got := nodeIDs(devices); !reflect.DeepEqual(got, []string{id}) {
			return fmt.Errorf("name=%s listed %v; want [%s]", device.Name, got, id)
		}
		return r.conformDevices(false)
	})
	r.check("devices.list.filter.no-match", func() error {
		devices, err := api.List(r.ctx, tailscale.WithFilter("hostname", []string{"conformance-no-such-host"}))
		if err != nil {
			return err
		}
		if len(devices) != 0 {
			return fmt.Errorf("listed %v for a hostname no device has", nodeIDs(devices))
		}
		return r.conformDevices(false)
	})
	r.check("devices.get", func() error {
		got, err := r.getDevice(id)
		if err != nil {
			return err
		}
		type identity struct {
			ID, NodeID, Name, Hostname string
			Addresses, Tags            []string
		}
		listed := identity{device.ID, device.NodeID, device.Name, device.Hostname, device.Addresses, device.Tags}
		read := identity{got.ID, got.NodeID, got.Name, got.Hostname, got.Addresses, got.Tags}
		if !reflect.DeepEqual(listed, read) {
			return fmt.Errorf("GET reads %+v; the list had %+v", read, listed)
		}
		return nil
	})
	r.check("devices.get.legacy-id", func() error {
		got, err := r.getDevice(device.ID)
		if err == nil && got.NodeID != id {
			err = fmt.Errorf("id %s reads as %s; want %s", device.ID, got.NodeID, id)
		}
		return err
	})
	r.check("devices.authorize", func() error {
		if err := api.SetAuthorized(r.ctx, id, true); err != nil {
			return err
		}
		got, err := r.getDevice(id)
		if err == nil && !got.Authorized {
			err = errors.New("authorized, yet reads as not authorized")
		}
		return err
	})
	r.check("devices.key-expiry", func() error {
		// DeviceKey sets true; its delete sends the zero DeviceKey (expiry back on).
		for _, disabled := range []bool{true, false, true} {
			if err := api.SetKey(r.ctx, id, tailscale.DeviceKey{KeyExpiryDisabled: disabled}); err != nil {
				return err
			}
			got, err := r.getDevice(id)
			if err != nil {
				return err
			}
			if got.KeyExpiryDisabled != disabled {
				return fmt.Errorf("keyExpiryDisabled set to %v reads %v", disabled, got.KeyExpiryDisabled)
			}
		}
		return nil
	})
	tags := []string{r.cfg.tag}
	r.check("devices.tags", func() error {
		if err := api.SetTags(r.ctx, id, tags); err != nil {
			return err
		}
		got, err := r.getDevice(id)
		if err == nil && !reflect.DeepEqual(got.Tags, tags) {
			err = fmt.Errorf("tags %v read as %v", tags, got.Tags)
		}
		return err
	})
	r.check("devices.tags.unowned.400", func() error {
		if _, err := r.conformError(api.SetTags(r.ctx, id, []string{"tag:conformance-unowned"}), 400); err != nil {
			return err
		}
		got, err := r.getDevice(id)
		if err == nil && !reflect.DeepEqual(got.Tags, tags) {
			err = fmt.Errorf("a refused tag change left tags %v", got.Tags)
		}
		return err
	})
	if !r.check("devices.delete", func() error {
		if err := api.Delete(r.ctx, id); err != nil {
			return err
		}
		devices, err := api.List(r.ctx)
		if err != nil {
			return err
		}
		for _, d := range devices {
			if d.NodeID == id {
				return fmt.Errorf("deleted, yet %s is still listed", id)
			}
		}
		return nil
	}) {
		r.skip("the device was not deleted", "devices.deleted.get.404", "devices.deleted.authorize.404",
			"devices.deleted.key.404", "devices.deleted.tags.404")
		return
	}
	// What the provider meets when the device is gone: Read treats 404 as removed.
	for _, gone := range []struct {
		name string
		call func() error
	}{
		{"devices.deleted.get.404", func() error { _, err := api.Get(r.ctx, id); return err }},
		{"devices.deleted.authorize.404", func() error { return api.SetAuthorized(r.ctx, id, true) }},
		{"devices.deleted.key.404", func() error { return api.SetKey(r.ctx, id, tailscale.DeviceKey{}) }},
		{"devices.deleted.tags.404", func() error { return api.SetTags(r.ctx, id, []string{}) }},
	} {
		r.check(gone.name, func() error {
			_, err := r.conformError(gone.call(), 404)
			return err
		})
	}
}
