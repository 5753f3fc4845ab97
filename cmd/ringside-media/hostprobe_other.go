//go:build !linux

package main

import (
	"errors"
	"time"
)

func probeCores(_, stop <-chan struct{}) ([][]time.Duration, error) {
	<-stop
	return nil, errors.New("the host probe pins threads to cores, which only Linux is asked for here")
}

func niceProcess(int) error {
	return errors.New("the generator's niceness is set only on Linux")
}
