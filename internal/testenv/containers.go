package testenv

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// Container runtimes of the real-runtime tests, as scripts/containers-up.sh sets them up.
const (
	EnvRequireContainers = "HPCTL_REQUIRE_CONTAINERS" // "1": a missing runtime or image fails the test
	EnvContainerImage    = "HPCTL_CONTAINER_IMAGE"    // the trainer's image, default localhost/hpctl-trainer:test
	EnvRootlessUser      = "HPCTL_ROOTLESS_USER"      // rootless podman's user, default hpctlrl
)

// Runtime modes RequireContainer knows.
const (
	PodmanRootful  = "podman"
	PodmanRootless = "podman-rootless"
	Docker         = "docker"
)

// ContainerImage is the trainer's image that scripts/containers-up.sh imports.
func ContainerImage() string {
	if s := os.Getenv(EnvContainerImage); s != "" {
		return s
	}
	return "localhost/hpctl-trainer:test"
}

// RootlessUser is the user rootless podman runs as.
func RootlessUser() string {
	if s := os.Getenv(EnvRootlessUser); s != "" {
		return s
	}
	return "hpctlrl"
}

// RequireContainer skips the test when the runtime mode cannot run the trainer's image
// here (the runtime answers and has the image), or fails it when
// HPCTL_REQUIRE_CONTAINERS=1. It returns the image.
func RequireContainer(t testing.TB, mode string) string {
	t.Helper()
	image := ContainerImage()
	var argv []string
	switch mode {
	case PodmanRootful:
		argv = []string{"podman", "image", "exists", image}
	case PodmanRootless:
		argv = []string{"runuser", "-u", RootlessUser(), "--", "podman", "image", "exists", image}
	case Docker:
		argv = []string{"docker", "image", "inspect", "--format", "{{.Id}}", image}
	default:
		t.Fatalf("testenv: unknown container mode %q", mode)
	}
	if out, err := run(probeTimeout, argv...); err != nil {
		unavailable(t, EnvRequireContainers, fmt.Sprintf(
			"container runtime %s without the image %s (%s: %v: %s); set it up with `make containers-up`",
			mode, image, strings.Join(argv, " "), err, firstLine(out)))
	}
	return image
}
