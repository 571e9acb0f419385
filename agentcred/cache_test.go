package agentcred

import (
	"path/filepath"
	"runtime"
	"testing"
)

func TestDefaultCacheDir(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("os.UserCacheDir follows XDG on Linux only")
	}
	t.Setenv("XDG_CACHE_HOME", "/xdg/cache")
	if dir, err := DefaultCacheDir(); err != nil || dir != filepath.FromSlash("/xdg/cache/kubegate/tokens") {
		t.Errorf("with XDG_CACHE_HOME: %q, %v", dir, err)
	}
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "/home/ci")
	if dir, err := DefaultCacheDir(); err != nil || dir != filepath.FromSlash("/home/ci/.cache/kubegate/tokens") {
		t.Errorf("with HOME: %q, %v", dir, err)
	}
}

func TestCacheKeyDependsOnEveryPart(t *testing.T) {
	base := cacheKey("https://dex", "kubegate", "agent", []string{"openid"})
	for _, other := range []string{
		cacheKey("https://dex2", "kubegate", "agent", []string{"openid"}),
		cacheKey("https://dex", "kubegate2", "agent", []string{"openid"}),
		cacheKey("https://dex", "kubegate", "agent2", []string{"openid"}),
		cacheKey("https://dex", "kubegate", "agent", []string{"openid", "groups"}),
		cacheKey("https://dex", "kubegateagent", "", []string{"openid"}),
	} {
		if other == base {
			t.Error("two logins share a cache key")
		}
	}
}
