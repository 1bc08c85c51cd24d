package experiment

import (
	"fmt"
	"slices"
	"strings"
)

// SiteValue is a value a site's settings (hpctl's settings file or HPCTL_* variables)
// give to a spec key that the spec leaves out: the partition every job of a site uses,
// its account, the container image. The spec wins: a key the spec writes is never
// replaced, so a spec means the same on every machine that sets nothing.
type SiteValue struct {
	// Key is the spec path the value fills: slurm.partition, container.image.
	Key   string
	Value string
	// From says where it was set, for messages and `submit --dry-run`:
	// "HPCTL_PARTITION", "settings file /home/me/.config/hpctl/config.yaml".
	From string
}

// siteSetters are the spec keys site settings may fill. Values are strings; each key's
// validation then runs on the filled spec exactly as on a written one.
var siteSetters = map[string]func(*Spec, string){
	"cluster.host":        func(s *Spec, v string) { s.Cluster.Host = v },
	"workdir":             func(s *Spec, v string) { s.Workdir = v },
	"slurm.partition":     func(s *Spec, v string) { s.Slurm.Partition = v },
	"slurm.account":       func(s *Spec, v string) { s.Slurm.Account = v },
	"slurm.qos":           func(s *Spec, v string) { s.Slurm.QOS = v },
	"container.runtime":   func(s *Spec, v string) { s.Container.Runtime = v },
	"container.image":     func(s *Spec, v string) { s.Container.Image = v },
	"model.weights_cache": func(s *Spec, v string) { s.Model.WeightsCache = v },
}

// SiteKeys are the spec keys that site settings can fill, sorted.
func SiteKeys() []string {
	return slices.Sorted(func(yield func(string) bool) {
		for k := range siteSetters {
			if !yield(k) {
				return
			}
		}
	})
}

// LoadWith is Load with site values filling the keys the spec leaves out, before
// validation: a bad value from the settings is reported as the setting's, not as a
// position in the spec.
func LoadWith(file string, site []SiteValue) (*Loaded, error) {
	return load(file, site)
}

// applySite fills the spec's (and every trial's) missing keys from site and records what
// it used. An empty value sets nothing.
func (l *Loaded) applySite(site []SiteValue) error {
	for _, sv := range site {
		set, ok := siteSetters[sv.Key]
		if !ok {
			return fmt.Errorf("%s: %s is not a spec key that settings can fill (those are %s)", sv.From, sv.Key, strings.Join(SiteKeys(), ", "))
		}
		if sv.Value == "" || l.Has(sv.Key) {
			continue
		}
		set(&l.Spec, sv.Value)
		if l.Sweep != nil {
			for i := range l.Sweep.Trials {
				t := &l.Sweep.Trials[i]
				if _, written := t.pos[sv.Key]; !written {
					set(&t.Spec, sv.Value)
				}
			}
		}
		l.Site = append(l.Site, sv)
	}
	return nil
}

// siteProblem rewrites a problem about a key the site filled so that it names the
// setting: the spec has no line to point at.
func (l *Loaded) siteProblem(p Problem) Problem {
	for _, sv := range l.Site {
		if p.path == sv.Key || strings.HasPrefix(p.path, sv.Key+".") || strings.HasPrefix(p.path, sv.Key+"[") {
			p.File, p.Pos = sv.From, Pos{}
			p.Msg = fmt.Sprintf("%s (set to %q there; the spec %s does not set %s)", p.Msg, sv.Value, l.File, sv.Key)
		}
	}
	return p
}
