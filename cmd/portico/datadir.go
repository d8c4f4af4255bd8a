package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// lockFile, in the data directory, carries the flock that says who uses
// the directory, and the PID of a portal that has it alone.
const lockFile = "portal.lock"

// pidWait bounds how long a refused start waits for the portal that holds
// the data directory to write its PID: it writes it just after it locks.
const pidWait = time.Second

// lockDataDir takes the data directory for this portal's whole life, before
// anything in it is touched. A portal on SQLite takes it alone (exclusive):
// its database is one process's, and a second portal on the same session
// homes would adopt, and on its exit end, the first one's sessions.
// Replicas on PostgreSQL share it (shared lock) and so share the session
// homes, which any of them may have to stop. Either is refused at once,
// with the way forward, when the other holds it. The kernel drops the lock
// of a portal that dies, whatever killed it; the session hosts a portal
// starts do not inherit it (the descriptor is close-on-exec).
func lockDataDir(dir string, alone bool) (release func(), err error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock the data directory: %w", err)
	}
	how := syscall.LOCK_SH
	if alone {
		how = syscall.LOCK_EX
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock the data directory %s: %w", dir, err)
		}
		return nil, dataDirBusy(f, dir, alone)
	}
	if !alone {
		return func() { f.Close() }, nil
	}
	if err := writePID(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock the data directory: %w", err)
	}
	return func() {
		// Emptied while still held: a PID left behind would name a
		// process that may be another program by the next start.
		f.Truncate(0)
		f.Close()
	}, nil
}

func writePID(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return err
}

// dataDirBusy explains why the data directory held through f could not be
// locked the way alone asks.
func dataDirBusy(f *os.File, dir string, alone bool) error {
	if alone && syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB) == nil {
		// Shared holders only: replicas on PostgreSQL.
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return fmt.Errorf("data directory %s is used by portal replicas on PostgreSQL; a portal on SQLite "+
			"runs alone in its data directory: start it with another --data-dir, or join the replicas with "+
			"--database postgres://… (the same database as theirs)", dir)
	}
	holder := "a portal (pid unknown)"
	if pid := holderPID(f); pid > 0 {
		holder = fmt.Sprintf("a portal (pid %d)", pid)
	}
	if !alone {
		return fmt.Errorf("data directory %s is used by %s on SQLite, which runs alone in it: start this "+
			"replica with another --data-dir, or stop that portal first", dir, holder)
	}
	return fmt.Errorf("data directory %s is used by %s; a portal on SQLite runs alone in its data "+
		"directory: start this one with another --data-dir, or run replicas of one portal with "+
		"--database postgres://… (each of them)", dir, holder)
}

// holderPID reads the PID the exclusive holder of f writes just after it
// locks; 0 when none shows up within pidWait.
func holderPID(f *os.File) int {
	deadline := time.Now().Add(pidWait)
	for {
		b := make([]byte, 32)
		n, _ := f.ReadAt(b, 0)
		if pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:n]))); err == nil && pid > 0 {
			return pid
		}
		if time.Now().After(deadline) {
			return 0
		}
		time.Sleep(10 * time.Millisecond)
	}
}
