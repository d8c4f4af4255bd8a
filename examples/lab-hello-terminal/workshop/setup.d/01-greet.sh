#!/bin/sh
# Runs once when the session starts, before the learner arrives: it leaves a
# file in the home directory that the last page of the instructions reads.
set -eu

cat > "$HOME/greeting.txt" <<GREETING
${GREETING:-Hello}, and welcome to your session.
This file was written by workshop/setup.d/01-greet.sh at $(date -u +%H:%M) UTC.
GREETING
