// Package config loads hpctl's own settings: flags > HPCTL_* environment > settings file >
// defaults. Experiment specs are not settings: they go through experiment.Load, whose keys and
// positions must survive (viper lowercases keys, spf13/viper#1486).
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

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
	// File is the settings file that was read, if any.
	File string `mapstructure:"-"`
}

// Keys lists every setting, for flags and documentation.
var Keys = []string{"log-level", "log-format", "state-dir", "results-dir", "host", "executor", "control-dir", "ssh-config", "poll-interval"}

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
				return Settings{}, fmt.Errorf("settings file %s: unknown setting %q (known: %s)", file, k, strings.Join(Keys, ", "))
			}
		}
	}
	for k, val := range flags {
		v.Set(k, val)
	}
	var s Settings
	if err := v.Unmarshal(&s); err != nil {
		return Settings{}, fmt.Errorf("settings: %w", err)
	}
	s.File = read
	if s.PollInterval < time.Second {
		return Settings{}, fmt.Errorf("settings: poll-interval %s is below 1s; Slurm's man pages ask tools not to poll in tight loops", s.PollInterval)
	}
	switch s.Executor {
	case "", "auto", "slurm", "local":
	default:
		return Settings{}, fmt.Errorf("settings: executor %q is not one of auto, slurm, local", s.Executor)
	}
	return s, nil
}

func known(k string) bool {
	for _, x := range Keys {
		if x == k {
			return true
		}
	}
	return false
}
