#!/usr/bin/env bash
# Generates every prompt the demo manifests in examples/demo/ name, as
# examples/demo/prompts/<name>.wav — 8 kHz, mono, G.711 µ-law WAV (8 bits a sample: the
# whole set fits one Kubernetes ConfigMap, and calls carry G.711 anyway):
#
#   welcome                    PhoneNumber main-line  spec.welcome
#   main-menu                  ForwardingScheme main-menu  menu.prompt
#   sales-voicemail-greeting   ForwardingScheme sales, sales-voicemail  voicemail.greeting
#   closed-greeting            ForwardingScheme after-hours, backup  voicemail.greeting
#   hold-music                 CallQueue support  spec.holdMusic
#   queue-position-1 … -9      queue position announcements (announcePosition: true)
#   queue-position-many
#
# Speech is made with espeak-ng, tones and music with sox. The output is
# repeatable: the same tool versions give byte-identical files.
#
# Usage: scripts/make-prompts.sh        (from any directory)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

missing=()
for tool in espeak-ng sox; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]} > 0)); then
  echo "make-prompts: missing tool(s): ${missing[*]}" >&2
  echo "install them with:  sudo apt-get update && sudo apt-get install -y espeak-ng sox" >&2
  exit 1
fi

OUT=examples/demo/prompts
mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

VOICE=en-us+f3   # espeak-ng voice + variant
SPEED=150        # words per minute
PITCH=50

# sox: repeatable random seeds (-R), no dither (-D), quiet.
SOX=(sox -R -D -q)
# The format of every prompt.
FMT=(-r 8000 -c 1 -b 16 -e signed-integer)
# What is written to examples/demo/prompts: G.711 µ-law.
OUTFMT=(-r 8000 -c 1 -b 8 -e u-law)

# speak NAME TEXT: speech → $TMP/NAME.wav (8 kHz, silence trimmed, short lead-in/out).
speak() {
  local name=$1 text=$2
  espeak-ng -v "$VOICE" -s "$SPEED" -p "$PITCH" -w "$TMP/$name.espeak.wav" "$text"
  "${SOX[@]}" "$TMP/$name.espeak.wav" "${FMT[@]}" "$TMP/$name.wav" \
    highpass 100 \
    silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse \
    rate 8000 \
    norm -3 \
    pad 0.15 0.2
}

# A short 1 kHz beep ("after the tone"), preceded by a little silence.
"${SOX[@]}" -n "${FMT[@]}" "$TMP/beep.wav" \
  synth 0.4 sine 1000 fade 0.01 0.4 0.01 vol -6dB pad 0.35 0.1

# --- Speech prompts -----------------------------------------------------------

speak welcome \
  "Thank you for calling Acme. This call may be recorded for quality purposes."
"${SOX[@]}" "$TMP/welcome.wav" "${OUTFMT[@]}" "$OUT/welcome.wav"

speak main-menu \
  "Press 1 to talk to sales, press 2 if you are already a client, or dial an extension."
"${SOX[@]}" "$TMP/main-menu.wav" "${OUTFMT[@]}" "$OUT/main-menu.wav"

speak sales-voicemail-greeting \
  "All of our sales managers are busy right now. Please leave your name, your number, and a short message after the tone, and we will call you back as soon as possible."
"${SOX[@]}" "$TMP/sales-voicemail-greeting.wav" "$TMP/beep.wav" "${OUTFMT[@]}" "$OUT/sales-voicemail-greeting.wav"

# Also used as a voicemail greeting (after-hours, backup): it ends with the tone too.
speak closed-greeting \
  "Thank you for calling Acme. Our office is closed right now. We are open Monday to Friday, from 9 A M to 7 P M, and on Saturday, from 10 A M to 3 P M. Please leave a message after the tone, and we will call you back."
"${SOX[@]}" "$TMP/closed-greeting.wav" "$TMP/beep.wav" "${OUTFMT[@]}" "$OUT/closed-greeting.wav"

numbers=(zero one two three four five six seven eight nine)
for n in 1 2 3 4 5 6 7 8 9; do
  speak "queue-position-$n" "You are number ${numbers[$n]} in the queue."
  "${SOX[@]}" "$TMP/queue-position-$n.wav" "${OUTFMT[@]}" "$OUT/queue-position-$n.wav"
done
speak queue-position-many "There are several callers ahead of you."
"${SOX[@]}" "$TMP/queue-position-many.wav" "${OUTFMT[@]}" "$OUT/queue-position-many.wav"

# --- Hold music -----------------------------------------------------------------
# A soft harp-like arpeggio over a quiet sine pad, in C major:
#   | C  | Am | F  | G  | C  | Em | F  | G  |   8 bars × 2.5 s = 20 s.
# The last bar (G) leads back to the first (C), so the file loops.
# Chords are semitone offsets from A4 (440 Hz): root, third, fifth.
BAR=2.5
STEP=0.3125     # eighth notes at 96 bpm: 8 per bar
chords=(
  "-9 -5 -2"    # C4 E4 G4
  "-12 -9 -5"   # A3 C4 E4
  "-16 -12 -9"  # F3 A3 C4
  "-14 -10 -7"  # G3 B3 D4
  "-9 -5 -2"    # C
  "-17 -14 -10" # E3 G3 B3
  "-16 -12 -9"  # F
  "-14 -10 -7"  # G
)
bars=()
for i in "${!chords[@]}"; do
  read -r r t f <<<"${chords[$i]}"
  # Arpeggio: root third fifth octave tenth octave fifth third.
  notes=("$r" "$t" "$f" $((r + 12)) $((t + 12)) $((r + 12)) "$f" "$t")
  tones=() delays=()
  for k in "${!notes[@]}"; do
    tones+=(pluck "%${notes[$k]}")
    delays+=("$(awk -v k="$k" -v s="$STEP" 'BEGIN { printf "%.4f", k * s }')")
  done
  # Each bar's notes ring on for 1 s past the bar; the bars overlap when mixed.
  "${SOX[@]}" -n -r 16000 -b 16 "$TMP/arp-$i.wav" \
    synth 1.5 "${tones[@]}" delay "${delays[@]}" remix - \
    trim 0 3.5 fade t 0 3.5 0.8
  "${SOX[@]}" -n -r 16000 -b 16 "$TMP/pad-$i.wav" \
    synth "$BAR" sine "%$r" sine "%$f" sine "%$((r + 12))" remix - \
    fade h 0.5 "$BAR" 0.7 vol 0.25
  offset=$(awk -v i="$i" -v b="$BAR" 'BEGIN { printf "%.4f", i * b }')
  "${SOX[@]}" -m -v 1 "$TMP/arp-$i.wav" -v 1 "$TMP/pad-$i.wav" -r 16000 -c 1 -b 16 "$TMP/bar-$i.wav" \
    pad "$offset"
  bars+=("$TMP/bar-$i.wav")
done
"${SOX[@]}" -m "${bars[@]}" "${OUTFMT[@]}" "$OUT/hold-music.wav" \
  trim 0 20 highpass 150 lowpass 1800 rate 8000 fade t 0.05 20 0.6 norm -6

echo "make-prompts: wrote $(ls "$OUT"/*.wav | wc -l) prompts to $OUT" >&2
