package main

import (
	"time"

	"github.com/urfave/cli/v2"

	"github.com/hpctl/hpctl/internal/config"
)

// durationValue is a flag value read as every hpctl duration is (config.ParseDuration):
// with a unit. urfave's DurationFlag would say only "parse error" for --interval 5.
type durationValue struct{ d time.Duration }

func (v *durationValue) Set(s string) error {
	d, err := config.ParseDuration(s)
	if err != nil {
		return err
	}
	v.d = d
	return nil
}

func (v *durationValue) String() string {
	if v == nil || v.d == 0 {
		return ""
	}
	return v.d.String()
}

// Get makes the value a flag.Getter, which urfave's Context.Value needs.
func (v *durationValue) Get() any { return v.d }

// durationFlag is a duration flag; defaultText is shown as its default in --help.
func durationFlag(name, usage, defaultText string) *cli.GenericFlag {
	return &cli.GenericFlag{Name: name, Usage: usage, Value: &durationValue{}, DefaultText: defaultText}
}

// flagDuration is the value of a durationFlag; 0 when it was not given.
func flagDuration(c *cli.Context, name string) time.Duration {
	if v, ok := c.Generic(name).(*durationValue); ok {
		return v.d
	}
	return 0
}
