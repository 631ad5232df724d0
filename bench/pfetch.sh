#!/bin/sh
echo "pfetch bench: not written yet"
