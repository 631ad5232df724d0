#!/bin/sh
# Generates configure and the Makefile.in files in a git checkout (a release
# tarball already has them).  Needs autoconf, automake, libtool and
# pkg-config (for its pkg.m4), nothing else.  Arguments go to autoreconf.
set -e
cd "$(dirname "$0")"
exec autoreconf -fi "$@"
