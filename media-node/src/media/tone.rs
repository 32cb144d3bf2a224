//! Sounds Dialtone makes itself rather than reading from the prompts folder: the ringback
//! tone a caller hears while agents ring once we have answered them, the voicemail beep, and
//! the level measure that tells speech from silence when recording a message.

use std::f64::consts::PI;

/// Samples per second of every sound here (G.711's clock).
pub const RATE: u32 = 8000;

/// RMS level (linear PCM16) above which a 20 ms frame counts as voice. About −40 dBFS: line
/// noise and G.711's idle codes stay far below it, quiet speech stays above.
pub const VOICE_RMS: f64 = 330.0;

/// A sine tone of `freq` Hz for `ms` milliseconds at `amplitude` (peak, linear PCM16), with
/// 5 ms ramps at both ends so that it starts and stops without a click.
pub fn sine(freq: f64, ms: u32, amplitude: i16) -> Vec<i16> {
    let n = (RATE * ms / 1000) as usize;
    let ramp = (RATE as usize * 5 / 1000).max(1);
    (0..n)
        .map(|i| {
            let edge = i.min(n - 1 - i);
            let gain = if edge < ramp {
                edge as f64 / ramp as f64
            } else {
                1.0
            };
            let t = i as f64 / f64::from(RATE);
            (f64::from(amplitude) * gain * (2.0 * PI * freq * t).sin()) as i16
        })
        .collect()
}

/// `ms` milliseconds of silence.
pub fn silence(ms: u32) -> Vec<i16> {
    vec![0; (RATE * ms / 1000) as usize]
}

/// One cadence of the ringback tone (ETSI ES 201 970 / ITU-T E.180, as in Ukraine and most of
/// Europe): 425 Hz for 1 s, then 4 s of silence. Played in a loop.
pub fn ringback() -> Vec<i16> {
    let mut out = sine(425.0, 1000, 5000);
    out.extend(silence(4000));
    out
}

/// The "record after the tone" beep: 100 ms of silence, then 1 kHz for 400 ms.
pub fn beep() -> Vec<i16> {
    let mut out = silence(100);
    out.extend(sine(1000.0, 400, 8000));
    out
}

/// The RMS level of a frame.
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|s| f64::from(*s).powi(2)).sum();
    (sum / samples.len() as f64).sqrt()
}

/// Whether a frame is voice rather than silence or line noise.
pub fn is_voice(samples: &[i16]) -> bool {
    rms(samples) > VOICE_RMS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ringback_cadence_and_levels() {
        let r = ringback();
        assert_eq!(r.len(), 5 * 8000);
        assert!(is_voice(&r[4000..4160]), "the tone is heard");
        assert!(!is_voice(&r[9000..9160]), "then silence");
        let b = beep();
        assert_eq!(b.len(), 4000);
        assert!(!is_voice(&b[..160]));
        assert!(is_voice(&b[2000..2160]));
        assert_eq!(rms(&[]), 0.0);
        assert!(!is_voice(&[8, -8, 8, -8]));
    }
}
