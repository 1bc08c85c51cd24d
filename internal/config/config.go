// Package config loads hpctl's own settings: flags > HPCTL_* environment > settings file >
// defaults. Experiment specs are not settings: they go through experiment.Load, whose keys and
// positions must survive (viper lowercases keys, spf13/viper#1486).
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/hpctl/hpctl/internal/suggest"
	"github.com/spf13/viper"
)

// Settings are hpctl's own knobs, documented in docs/settings.md.
type Settings struct {
	LogLevel     string        `mapstructure:"log-level"`
	LogFormat    string        `mapstructure:"log-format"`
	StateDir     string        `mapstructure:"state-dir"`
	ResultsDir   string        `mapstructure:"results-dir"`
	Host         string        `mapstructure:"host"`
	Executor     string        `mapstructure:"executor"`
	ControlDir   string        `mapstructure:"control-dir"`
	SSHConfig    string        `mapstructure:"ssh-config"`
	PollInterval time.Duration `mapstructure:"poll-interval"`
	// Python is the local interpreter with TensorFlow that `hpctl predict` runs the
	// trainer with on fetched results ("": python3 on PATH, when it imports TensorFlow).
	Python string `mapstructure:"python"`

	// Site defaults: values for spec keys a spec leaves out (see SiteSpecKeys).
	Workdir          string `mapstructure:"workdir"`
	Partition        string `mapstructure:"partition"`
	Account          string `mapstructure:"account"`
	QOS              string `mapstructure:"qos"`
	ContainerRuntime string `mapstructure:"container-runtime"`
	ContainerImage   string `mapstructure:"container-image"`
	WeightsCache     string `mapstructure:"weights-cache"`

	// File is the settings file that was read, if any.
	File string `mapstructure:"-"`
	// from says where each setting's value came from (see From).
	from map[string]string
}

// Keys lists every setting, for flags and documentation.
var Keys = []string{"log-level", "log-format", "state-dir", "results-dir", "host", "executor", "control-dir", "ssh-config", "poll-interval", "python",
	"workdir", "partition", "account", "qos", "container-runtime", "container-image", "weights-cache"}

// SiteSpecKeys maps the settings that fill a spec's missing keys to those spec keys. The
// spec wins over them; host is one of them for a spec (a --host flag still wins over the
// spec's cluster.host).
var SiteSpecKeys = map[string]string{
	"host":              "cluster.host",
	"workdir":           "workdir",
	"partition":         "slurm.partition",
	"account":           "slurm.account",
	"qos":               "slurm.qos",
	"container-runtime": "container.runtime",
	"container-image":   "container.image",
	"weights-cache":     "model.weights_cache",
}

// Site returns the site settings' values by setting name (see SiteSpecKeys).
func (s Settings) Site() map[string]string {
	return map[string]string{
		"host": s.Host, "workdir": s.Workdir, "partition": s.Partition, "account": s.Account, "qos": s.QOS,
		"container-runtime": s.ContainerRuntime, "container-image": s.ContainerImage, "weights-cache": s.WeightsCache,
	}
}

// Origin kinds, the start of what From returns.
const (
	FromFlag    = "flag"
	FromEnv     = "environment"
	FromFile    = "settings file"
	FromDefault = "default"
)

// From says where a setting's value came from: "flag --host", "environment HPCTL_HOST",
// "settings file /home/me/.config/hpctl/config.yaml", or "default".
func (s Settings) From(key string) string {
	if f, ok := s.from[key]; ok {
		return f
	}
	return FromDefault
}

// FromFlag reports whether the setting was given on the command line.
func (s Settings) IsFlag(key string) bool { return strings.HasPrefix(s.From(key), FromFlag) }

// EnvName is the HPCTL_* variable of a setting.
func EnvName(key string) string {
	return "HPCTL_" + strings.ToUpper(strings.ReplaceAll(key, "-", "_"))
}

// DefaultFile is $XDG_CONFIG_HOME/hpctl/config.yaml (~/.config/hpctl/config.yaml).
func DefaultFile() string {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "hpctl", "config.yaml")
}

func defaultStateDir() string {
	dir := os.Getenv("XDG_STATE_HOME")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(dir, "hpctl")
}

// Load merges defaults, the settings file (file, or DefaultFile when empty; a missing
// default file is fine, a missing named one is not), HPCTL_* variables and flags (only
// the flags the user set).
func Load(file string, flags map[string]string) (Settings, error) {
	v := viper.New()
	v.SetDefault("log-level", "info")
	v.SetDefault("log-format", "auto")
	v.SetDefault("state-dir", defaultStateDir())
	v.SetDefault("results-dir", "results")
	v.SetDefault("host", "")
	v.SetDefault("executor", "")
	v.SetDefault("control-dir", "")
	v.SetDefault("ssh-config", "")
	v.SetDefault("poll-interval", "10s")
	for _, k := range Keys {
		if !v.IsSet(k) {
			v.SetDefault(k, "")
		}
	}
	v.SetEnvPrefix("HPCTL")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()

	explicit := file != ""
	if !explicit {
		file = DefaultFile()
	}
	v.SetConfigFile(file)
	v.SetConfigType("yaml")
	read := ""
	if err := v.ReadInConfig(); err != nil {
		var notFound viper.ConfigFileNotFoundError
		if explicit || !(errors.As(err, &notFound) || errors.Is(err, os.ErrNotExist)) {
			return Settings{}, fmt.Errorf("settings file %s: %w", file, err)
		}
	} else {
		read = file
		for _, k := range v.AllKeys() {
			if !known(k) {
				hint := ""
				if near := suggest.Nearest(k, Keys); near != "" {
					hint = fmt.Sprintf("; did you mean %q?", near)
				}
				return Settings{}, fmt.Errorf("settings file %s: unknown setting %q%s (known: %s)", file, k, hint, strings.Join(Keys, ", "))
			}
		}
	}
	for k, val := range flags {
		v.Set(k, val)
	}
	from := map[string]string{}
	for _, k := range Keys {
		switch _, env := os.LookupEnv(EnvName(k)); {
		case flags[k] != "":
			from[k] = FromFlag + " --" + k
		case env:
			from[k] = FromEnv + " " + EnvName(k)
		case read != "" && v.InConfig(k):
			from[k] = FromFile + " " + read
		}
	}
	var s Settings
	if err := v.Unmarshal(&s, viper.DecodeHook(durationHook(from))); err != nil {
		return Settings{}, fmt.Errorf("settings: %w", err)
	}
	s.File, s.from = read, from
	if s.PollInterval < time.Second {
		return Settings{}, fmt.Errorf("settings: poll-interval %s (%s) is below 1s; Slurm's man pages ask tools not to poll in tight loops", s.PollInterval, s.From("poll-interval"))
	}
	switch s.Executor {
	case "", "auto", "slurm", "local":
	default:
		return Settings{}, fmt.Errorf("settings: executor %q is not one of auto, slurm, local", s.Executor)
	}
	return s, nil
}

// durationHook reads durations the one way hpctl reads them everywhere (flags included):
// with a unit. A bare number is refused, not taken as nanoseconds (what viper and
// time.Duration would do with "poll-interval: 5") nor guessed to be seconds.
func durationHook(from map[string]string) mapstructure.DecodeHookFuncType {
	return func(_ reflect.Type, to reflect.Type, data any) (any, error) {
		if to != reflect.TypeOf(time.Duration(0)) {
			return data, nil
		}
		var text string
		switch d := data.(type) {
		case string:
			text = d
		case int, int64, uint, uint64, float64, float32, int32:
			text = fmt.Sprint(d)
		default:
			return data, nil
		}
		dur, err := ParseDuration(text)
		if err != nil {
			return nil, err
		}
		return dur, nil
	}
}

func known(k string) bool {
	for _, x := range Keys {
		if x == k {
			return true
		}
	}
	return false
}

// ParseDuration reads a duration as every hpctl setting and flag takes one: a number with
// a unit (30s, 5m, 1h30m). A bare number is an error that says how to write it, so that
// "5" is never read as five nanoseconds.
func ParseDuration(text string) (time.Duration, error) {
	t := strings.TrimSpace(text)
	if _, err := strconv.ParseFloat(t, 64); err == nil {
		return 0, fmt.Errorf("%q has no unit; write it as %ss (seconds), or with m or h", text, t)
	}
	d, err := time.ParseDuration(t)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (write 30s, 5m or 1h30m)", text)
	}
	return d, nil
}
