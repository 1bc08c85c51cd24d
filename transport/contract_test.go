package transport_test

import (
	"testing"

	"github.com/hpctl/hpctl/internal/testenv"
	"github.com/hpctl/hpctl/transport"
	"github.com/hpctl/hpctl/transport/transporttest"
)

func TestLocalContract(t *testing.T) {
	t.Run("rsync", func(t *testing.T) {
		transporttest.Run(t, func(*testing.T) transport.Transport { return transport.NewLocal() })
	})
	t.Run("go-copy", func(t *testing.T) {
		transporttest.Run(t, func(*testing.T) transport.Transport { return &transport.Local{NoRsync: true} })
	})
}

func TestSSHContract(t *testing.T) {
	cfg, host := testenv.RequireSSH(t)
	for _, noRsync := range []bool{false, true} {
		name := "rsync"
		if noRsync {
			name = "tar-stream"
		}
		t.Run(name, func(t *testing.T) {
			transporttest.Run(t, func(t *testing.T) transport.Transport {
				return transport.NewSSH(host, transport.SSHOptions{ConfigFile: cfg, ControlDir: testenv.ControlDir(t), NoRsync: noRsync})
			})
		})
	}
}
