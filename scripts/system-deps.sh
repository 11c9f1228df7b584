#!/usr/bin/env bash
# The real local services the tests and the demo run (ffmpeg, MariaDB), and
# unzip for make bench, come from Debian: installs whichever of these
# packages is missing (as root, or with sudo).
set -euo pipefail
packages=(ffmpeg mariadb-server unzip)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${missing[@]}" >/dev/null
