package pipeline

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// stageJSON is how a StageStatus's duration and exit status are written for scripts
// (docs/json.md): seconds with the unit in the name, and numbers, not Slurm's "0:15".
type stageJSON struct {
	ElapsedS float64 `json:"elapsed_s"`
	// ExitCode is the job's exit code; nil while it has none. Signal is the signal that
	// ended it, when one did.
	ExitCode *int `json:"exit_code,omitempty"`
	Signal   *int `json:"signal,omitempty"`
}

// MarshalJSON writes the stage with elapsed_s, exit_code and signal.
func (s StageStatus) MarshalJSON() ([]byte, error) {
	type plain StageStatus
	j := struct {
		plain
		stageJSON
	}{plain: plain(s), stageJSON: stageJSON{ElapsedS: math.Round(s.Elapsed.Seconds()*1000) / 1000}}
	// An exit status that is not a number (a damaged marker file on the cluster) is
	// left out rather than failing the whole document.
	if code, sig, err := splitExit(s.ExitCode); s.ExitCode != "" && err == nil {
		j.stageJSON.ExitCode = &code
		if sig != 0 {
			j.Signal = &sig
		}
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *StageStatus) UnmarshalJSON(b []byte) error {
	type plain StageStatus
	var j struct {
		plain
		stageJSON
	}
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*s = StageStatus(j.plain)
	s.Elapsed = time.Duration(j.ElapsedS * float64(time.Second))
	if j.stageJSON.ExitCode != nil {
		s.ExitCode = strconv.Itoa(*j.stageJSON.ExitCode)
		if j.Signal != nil {
			s.ExitCode += ":" + strconv.Itoa(*j.Signal)
		}
	}
	return nil
}

// splitExit reads an exit status as executors report it: "3", or Slurm's "0:15" (exit
// code, then the signal that ended the job).
func splitExit(text string) (code, signal int, err error) {
	c, sig, hasSig := strings.Cut(text, ":")
	if code, err = strconv.Atoi(c); err != nil {
		return 0, 0, fmt.Errorf("exit status %q is not a number", text)
	}
	if hasSig {
		if signal, err = strconv.Atoi(sig); err != nil {
			return 0, 0, fmt.Errorf("exit status %q: the signal is not a number", text)
		}
	}
	return code, signal, nil
}
