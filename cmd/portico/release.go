package main

// release is the version of this source tree: the tag of the images
// deploy/ builds from it, and the appVersion of its Helm chart.
const release = "0.1.0"

// defaultSessionImage is built by deploy/kubernetes/Dockerfile.session
// from the same tree as the portal: a moving tag could run sessions of
// another release.
const defaultSessionImage = "ghcr.io/portico-dev/portico-session:" + release
