package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// clean unsets every HPCTL_* variable for the test, so the machine's own do not leak in.
func clean(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "HPCTL_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestSiteSettingsAndWhereTheyCameFrom(t *testing.T) {
	clean(t)
	f := writeFile(t, "partition: gpu\naccount: proj1\ncontainer-image: /shared/tf.sqsh\nhost: login1\n")
	t.Setenv("HPCTL_ACCOUNT", "proj2")
	s, err := Load(f, map[string]string{"host": "login2"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Partition != "gpu" || s.Account != "proj2" || s.ContainerImage != "/shared/tf.sqsh" || s.Host != "login2" {
		t.Fatalf("settings: %+v", s)
	}
	for key, want := range map[string]string{
		"partition":       "settings file " + f,
		"account":         "environment HPCTL_ACCOUNT",
		"host":            "flag --host",
		"qos":             "default",
		"container-image": "settings file " + f,
	} {
		if got := s.From(key); got != want {
			t.Errorf("From(%s) = %q, want %q", key, got, want)
		}
	}
	if !s.IsFlag("host") || s.IsFlag("partition") {
		t.Error("IsFlag is wrong")
	}
	for k := range SiteSpecKeys {
		if !known(k) {
			t.Errorf("site key %s is not a setting", k)
		}
	}
}

func TestUnknownSettingSuggestsTheNearest(t *testing.T) {
	clean(t)
	_, err := Load(writeFile(t, "partiton: gpu\n"), nil)
	if err == nil || !strings.Contains(err.Error(), `unknown setting "partiton"; did you mean "partition"?`) {
		t.Fatalf("err = %v", err)
	}
}

func TestDurationsNeedAUnit(t *testing.T) {
	clean(t)
	for body, want := range map[string]string{
		"poll-interval: 5\n":     `"5" has no unit; write it as 5s`,
		"poll-interval: \"5\"\n": `"5" has no unit; write it as 5s`,
		"poll-interval: 2.5\n":   `"2.5" has no unit; write it as 2.5s`,
		"poll-interval: soon\n":  `"soon" is not a duration`,
	} {
		_, err := Load(writeFile(t, body), nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", body, err, want)
		}
	}
	t.Setenv("HPCTL_POLL_INTERVAL", "7")
	if _, err := Load("", nil); err == nil || !strings.Contains(err.Error(), "has no unit") {
		t.Errorf("HPCTL_POLL_INTERVAL=7: err = %v", err)
	}
	t.Setenv("HPCTL_POLL_INTERVAL", "90s")
	s, err := Load(writeFile(t, "poll-interval: 30s\n"), nil)
	if err != nil || s.PollInterval != 90*time.Second {
		t.Fatalf("env 90s over file 30s: %v %v", s.PollInterval, err)
	}
}

func TestSiteCoversEverySiteKey(t *testing.T) {
	site := Settings{}.Site()
	for k := range SiteSpecKeys {
		if _, ok := site[k]; !ok {
			t.Errorf("Site() lacks %s", k)
		}
	}
	if len(site) != len(SiteSpecKeys) {
		t.Errorf("Site() has %d keys, SiteSpecKeys %d", len(site), len(SiteSpecKeys))
	}
}

// docs/settings.md documents every setting and every site key; a setting added in code
// and not there fails here.
func TestSettingsDocListsEverySetting(t *testing.T) {
	doc, err := os.ReadFile("../../docs/settings.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range Keys {
		if !strings.Contains(string(doc), "| `"+k+"` |") {
			t.Errorf("docs/settings.md has no row for %s", k)
		}
	}
	for k, path := range SiteSpecKeys {
		if !strings.Contains(string(doc), "| `"+k+"` | `"+path+"` |") {
			t.Errorf("docs/settings.md does not say %s fills %s", k, path)
		}
	}
}
