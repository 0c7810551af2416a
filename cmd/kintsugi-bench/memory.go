package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kintsugi-journal/kintsugi/protocol"
)

// The memory scenario stores a volume of mixed blobs through the real
// kintsugi-relay command (built from this repository, or the binary
// --relay-binary names) and reads the relay process's memory from the
// kernel while it does: its peak RSS (VmHWM, which the kernel keeps
// exactly) and, sampled every memorySample, its anonymous memory (the Go
// heap and stacks: what the kernel cannot drop) and its file-backed
// memory (Badger's memory-mapped files, which the kernel can drop and
// read again). The relay is started by exec, so its address space, and
// its peak, are its own.

// Blob sizes of the memory scenario: spread evenly on a log scale, so
// there are as many blobs of 1–10 KiB as of 50–500 KiB.
const (
	memoryMinBlob = 1 << 10
	memoryMaxBlob = 500 << 10
)

// memorySample is how often the relay's memory is sampled.
const memorySample = 50 * time.Millisecond

// memoryResult is one run of the memory scenario.
type memoryResult struct {
	BudgetBytes  int64   `json:"budget_bytes"` // the relay's --memory-budget
	Writers      int     `json:"writers"`      // one device and journal each
	MinBlobBytes int     `json:"min_blob_bytes"`
	MaxBlobBytes int     `json:"max_blob_bytes"`
	Blobs        int     `json:"blobs"`        // acknowledged
	StoredBytes  int64   `json:"stored_bytes"` // of blobs acknowledged
	Seconds      float64 `json:"seconds"`

	StartRSSBytes uint64 `json:"start_rss_bytes"` // after start-up, before any blob
	PeakRSSBytes  uint64 `json:"peak_rss_bytes"`  // VmHWM at the end
	PeakAnonBytes uint64 `json:"peak_anon_bytes"` // highest RssAnon sampled
	PeakFileBytes uint64 `json:"peak_file_bytes"` // highest RssFile sampled
	EndRSSBytes   uint64 `json:"end_rss_bytes"`   // once the last blob was acknowledged
	Samples       int    `json:"samples"`
}

// procMem is a process's memory as /proc/<pid>/status reports it, in bytes.
type procMem struct {
	rss, hwm, anon, file uint64
}

// readProcMem reads /proc/<pid>/status.
func readProcMem(pid int) (procMem, error) {
	var m procMem
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m, err
	}
	fields := map[string]*uint64{"VmRSS:": &m.rss, "VmHWM:": &m.hwm, "RssAnon:": &m.anon, "RssFile:": &m.file}
	for line := range strings.SplitSeq(string(data), "\n") {
		name, rest, _ := strings.Cut(line, "\t")
		if dst, ok := fields[name]; ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return m, fmt.Errorf("/proc/%d/status: %s %q", pid, name, rest)
			}
			*dst = kb << 10
		}
	}
	if m.rss == 0 {
		return m, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
	}
	return m, nil
}

// relayCmd is a kintsugi-relay serve process.
type relayCmd struct {
	cmd  *exec.Cmd
	addr string // host:port on 127.0.0.1
}

// startRelayCmd starts bin serving a fresh data directory under parent
// on a free port of 127.0.0.1, with rate limits and quotas off (a
// benchmark measures the relay, not the operator's policy), and with
// --memory-budget budget unless budget is empty.
func startRelayCmd(bin, dataDir, budget string) (*relayCmd, error) {
	args := []string{"serve", "--listen", "127.0.0.1:0", "--data", dataDir, "--log-level", "warn",
		"--request-rate", "0", "--journal-put-rate", "0", "--journal-quota", "0"}
	if budget != "" {
		args = append(args, "--memory-budget", budget)
	}
	cmd := exec.Command(bin, args...)
	// Its own settings only: no KINTSUGI_RELAY_* or GOMEMLIMIT from here.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KINTSUGI_RELAY_") && !strings.HasPrefix(kv, "GOMEMLIMIT=") && !strings.HasPrefix(kv, "GOGC=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r := &relayCmd{cmd: cmd}
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), "kintsugi-relay: listening on http://")
	if err != nil || !ok {
		r.stop()
		return nil, fmt.Errorf("the relay did not start (it said %q)", strings.TrimSpace(line))
	}
	r.addr = strings.Fields(rest)[0]
	go func() { _, _ = io.Copy(io.Discard, out) }() // "stopped"
	return r, nil
}

func (r *relayCmd) wsURL() string { return "ws://" + r.addr + protocol.Path }

// stop stops the relay as SIGTERM does, killing it after 30 s.
func (r *relayCmd) stop() error {
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		_ = r.cmd.Process.Kill()
		return errors.Join(errors.New("the relay did not stop within 30s"), <-done)
	}
}

// runMemory runs the memory scenario: writers each put blobs of
// memoryMinBlob to memoryMaxBlob bytes into their own journal, one at a
// time and waiting for each acknowledgement, until total bytes are
// stored.
func runMemory(o *options) (*memoryResult, error) {
	say := func(format string, args ...any) { fmt.Fprintf(o.progress, "kintsugi-bench: "+format+"\n", args...) }
	work, err := os.MkdirTemp(o.dir, "memory-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	bin := o.relayBinary
	if bin == "" {
		say("memory: building the kintsugi-relay command")
		if bin, err = buildCommand(work, "kintsugi-relay", "memory"); err != nil {
			return nil, err
		}
	}
	data := work + "/data"
	relay, err := startRelayCmd(bin, data, o.memoryBudget)
	if err != nil {
		return nil, err
	}
	defer relay.stop()
	pid := relay.cmd.Process.Pid

	res := &memoryResult{
		BudgetBytes:  o.memoryBudgetBytes,
		Writers:      o.memoryWriters,
		MinBlobBytes: memoryMinBlob,
		MaxBlobBytes: memoryMaxBlob,
	}
	// Let start-up settle: the first reading is the relay before any blob.
	time.Sleep(200 * time.Millisecond)
	start, err := readProcMem(pid)
	if err != nil {
		return nil, err
	}
	res.StartRSSBytes = start.rss

	conns := make([]*rawConn, o.memoryWriters)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.close()
			}
		}
	}()
	journals := make([]protocol.JournalID, o.memoryWriters)
	for w := range conns {
		if conns[w], err = dialDevice(relay.wsURL()); err != nil {
			return nil, err
		}
		journals[w] = newJournalID()
		if err := conns[w].create(journals[w]); err != nil {
			return nil, err
		}
	}

	// The sampler reads the relay's memory until the writers are done.
	var peakAnon, peakFile uint64
	var samples int
	stopSampling := make(chan struct{})
	sampled := make(chan error, 1)
	go func() {
		t := time.NewTicker(memorySample)
		defer t.Stop()
		for {
			m, err := readProcMem(pid)
			if err != nil {
				sampled <- err
				return
			}
			peakAnon, peakFile, samples = max(peakAnon, m.anon), max(peakFile, m.file), samples+1
			select {
			case <-stopSampling:
				sampled <- nil
				return
			case <-t.C:
			}
		}
	}()

	say("memory: storing %s in blobs of %d KiB to %d KiB with %d writers", mibs(o.memoryTotal), memoryMinBlob>>10, memoryMaxBlob>>10, o.memoryWriters)
	var claimed, stored atomic.Int64
	var blobs atomic.Int64
	errs := make([]error, o.memoryWriters)
	var wg sync.WaitGroup
	t0 := time.Now()
	logRange := math.Log(float64(memoryMaxBlob) / float64(memoryMinBlob))
	for w := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, j := conns[w], journals[w]
			rng := rand.New(rand.NewPCG(uint64(w), 11))
			ch := &chain{journal: j, author: c.device}
			var frame []byte
			for {
				ch.size = int(float64(memoryMinBlob) * math.Exp(rng.Float64()*logRange))
				if n := int64(ch.size); claimed.Add(n)-n >= o.memoryTotal {
					return // the total is claimed
				}
				id := c.id()
				var err error
				if frame, err = c.sendPut(frame, id, j, ch.next()); err != nil {
					errs[w] = err
					return
				}
				if _, err := c.waitOK(id); err != nil {
					errs[w] = fmt.Errorf("writer %d: %w", w, err)
					return
				}
				stored.Add(int64(ch.size))
				blobs.Add(1)
			}
		}()
	}
	wg.Wait()
	res.Seconds = time.Since(t0).Seconds()
	close(stopSampling)
	if err := errors.Join(append(errs, <-sampled)...); err != nil {
		return nil, err
	}
	end, err := readProcMem(pid)
	if err != nil {
		return nil, err
	}
	res.Blobs, res.StoredBytes = int(blobs.Load()), stored.Load()
	res.PeakRSSBytes, res.EndRSSBytes = end.hwm, end.rss
	res.PeakAnonBytes, res.PeakFileBytes = max(peakAnon, end.anon), max(peakFile, end.file)
	res.Samples = samples
	return res, nil
}

func mibs(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
