package main

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"hash"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/moat-registry/moat/internal/testsupport/diskbound"
)

// settle writes every dirty page of the machine back to disk and waits for
// it, so that the next timed write (a push, or the bound) does not pay for
// the writeback of an earlier one: Distribution does not fsync, so without
// this its pushes' pages would be written back during moat's next push.
func settle() { unix.Sync() }

// bound is what this machine can do for a pushed blob without any network
// or protocol: hash it, write it durably, or both in one pass.
type bound struct {
	size int64
	// sha256 is in-process hashing of a buffer in memory.
	sha256 throughput
	// write is sequential 1 MiB writes to a new file on the registries'
	// disk, then fsync and close: the better of plain writes and writes
	// that start writeback every 8 MiB (see timedWrite).
	write throughput
	// hashWrite hashes and writes every 1 MiB chunk in turn, then fsyncs:
	// the work a registry must do for each pushed byte, without the network.
	// Also the better of plain and writeback-starting writes.
	hashWrite throughput
}

// bestWrite is the better of a plain timedWrite and one that starts
// writeback as it goes: the bound is what the disk does at its best, not
// what one way of writing gets from it.
func bestWrite(dir string, data []byte, hashed bool) (throughput, error) {
	var out throughput
	for _, hint := range []bool{false, true} {
		var h hash.Hash
		if hashed {
			h = sha256.New()
		}
		t, err := timedWrite(dir, data, h, hint)
		if err != nil {
			return out, err
		}
		if out.dur == 0 || t.dur < out.dur {
			out = t
		}
	}
	return out, nil
}

// measureBound runs each measurement twice on size bytes and keeps the
// better run.
func measureBound(dir string, size int64) (bound, error) {
	b := bound{size: size}
	data := make([]byte, size)
	if _, err := rand.Read(data); err != nil {
		return b, err
	}
	best := func(cur, next throughput) throughput {
		if cur.dur == 0 || next.mbps() > cur.mbps() {
			return next
		}
		return cur
	}
	for i := 0; i < 2; i++ {
		start := time.Now()
		h := sha256.New()
		for off := int64(0); off < size; off += mib {
			h.Write(data[off:min(off+mib, size)])
		}
		_ = h.Sum(nil)
		b.sha256 = best(b.sha256, throughput{bytes: size, dur: time.Since(start)})

		t, err := bestWrite(dir, data, false)
		if err != nil {
			return b, err
		}
		b.write = best(b.write, t)

		t, err = bestWrite(dir, data, true)
		if err != nil {
			return b, err
		}
		b.hashWrite = best(b.hashWrite, t)
	}
	return b, nil
}

// timedWrite writes data to a new file in dir with diskbound.Write (1 MiB
// writes, each hashed first when h is not nil, writeback started every
// 8 MiB when hint), closes and removes it, and reports the time up to the
// close. The disk is synced before
// the clock starts, so no earlier write's writeback is counted.
func timedWrite(dir string, data []byte, h hash.Hash, hint bool) (throughput, error) {
	f, err := os.CreateTemp(dir, "bound-*.tmp")
	if err != nil {
		return throughput{}, fmt.Errorf("creating a file on the registries' disk: %w", err)
	}
	name := f.Name()
	defer func() { _ = os.Remove(name) }()
	settle()
	start := time.Now()
	if err := diskbound.Write(f, data, h, hint); err != nil {
		_ = f.Close()
		return throughput{}, fmt.Errorf("writing %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return throughput{}, fmt.Errorf("closing %s: %w", name, err)
	}
	return throughput{bytes: int64(len(data)), dur: time.Since(start)}, nil
}

// machine describes where the numbers were taken.
type machine struct {
	cpus     int
	cpuModel string
	memory   string
	kernel   string
}

func describeMachine() machine {
	m := machine{cpus: runtime.NumCPU(), cpuModel: "unknown", memory: "unknown", kernel: "unknown"}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpuModel = strings.TrimSpace(v)
				break
			}
		}
		_ = f.Close()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64); err == nil {
					m.memory = fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
				}
			}
		}
	}
	osType, err1 := os.ReadFile("/proc/sys/kernel/ostype")
	release, err2 := os.ReadFile("/proc/sys/kernel/osrelease")
	if err1 == nil && err2 == nil {
		m.kernel = strings.TrimSpace(string(osType)) + " " + strings.TrimSpace(string(release))
	}
	return m
}
