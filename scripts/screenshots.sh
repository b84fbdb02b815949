#!/usr/bin/env bash
# Screenshots of the built-in layout as a phone 375 px wide shows it, for the README: the `preview` page of a
# few samples, drawn by Debian's headless Chromium (apt-get install chromium fonts-noto-cjk
# fonts-noto-color-emoji). Each picture is the first screen of one notification: what an on-call engineer
# sees without scrolling.
#   scripts/screenshots.sh [OUTPUT_DIR]      (default docs/screenshots)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/screenshots}"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cargo build --quiet --bin dingtalk-bridge
cat > "$work/config.yaml" <<'YAML'
timezone: Asia/Shanghai
targets:
  ops:
    dry_run: true
    keyword: ProdAlert
    mention: {mobiles: ["13800000000"]}
YAML
for sample in \
    KubePodCrashLooping-1-firing-namespace \
    HostOutOfMemory-12-firing-alertname \
    KubePodNotReady-300-firing-namespace \
    Namespace-12-mixed-namespace \
    HostOutOfMemory-1-firing-namespace-zh; do
  target/debug/dingtalk-bridge -c "$work/config.yaml" --log-level warn \
    preview --target ops --sample "$sample" -o "$work/$sample.html"
  # 375 px of phone plus the page's margins; 812 px tall, an iPhone's screen.
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 \
    --window-size=407,812 --screenshot="$out/$sample.png" "file://$work/$sample.html" 2>/dev/null
  echo "$out/$sample.png"
done
