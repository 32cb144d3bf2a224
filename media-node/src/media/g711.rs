//! G.711 µ-law (PCMU) and A-law (PCMA), ITU-T G.711: 8-bit logarithmic samples ↔ 16-bit linear.
//!
//! Used to decode prompts and recordings and to transcode between a caller on PCMU and an
//! agent on PCMA. Table-free and branch-light: a 20 ms frame is 160 samples.

const BIAS: i32 = 0x84;
const CLIP: i32 = 32635;

/// 16-bit linear → µ-law.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(CLIP) + BIAS;
    // Segment: position of the highest set bit above bit 7.
    let exponent = (31 - (s as u32).leading_zeros()).saturating_sub(7).min(7);
    let mantissa = (s >> (exponent + 3)) & 0x0F;
    !((sign | ((exponent as i32) << 4) | mantissa) as u8)
}

/// µ-law → 16-bit linear.
pub fn ulaw_to_linear(code: u8) -> i16 {
    let u = !code;
    let sign = u & 0x80;
    let exponent = i32::from((u >> 4) & 0x07);
    let mantissa = i32::from(u & 0x0F);
    let magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
    let v = if sign != 0 { -magnitude } else { magnitude };
    v as i16
}

/// 16-bit linear → A-law (the segment search of the reference implementation).
pub fn linear_to_alaw(sample: i16) -> u8 {
    const SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
    let mut v = i32::from(sample) >> 3;
    let mask: u8 = if v >= 0 {
        0xD5
    } else {
        v = -v - 1;
        0x55
    };
    let Some(seg) = SEG_END.iter().position(|&end| v <= end) else {
        return 0x7F ^ mask;
    };
    let mantissa = if seg < 2 {
        (v >> 1) & 0x0F
    } else {
        (v >> seg) & 0x0F
    };
    (((seg as u8) << 4) | mantissa as u8) ^ mask
}

/// A-law → 16-bit linear.
pub fn alaw_to_linear(code: u8) -> i16 {
    let a = code ^ 0x55;
    let sign = a & 0x80;
    let exponent = i32::from((a >> 4) & 0x07);
    let mantissa = i32::from(a & 0x0F);
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    let v = if sign != 0 { magnitude } else { -magnitude };
    v as i16
}

/// µ-law → A-law without going through a `Vec` of linear samples.
pub fn ulaw_to_alaw(code: u8) -> u8 {
    linear_to_alaw(ulaw_to_linear(code))
}

/// A-law → µ-law.
pub fn alaw_to_ulaw(code: u8) -> u8 {
    linear_to_ulaw(alaw_to_linear(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes() {
        // Silence.
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(alaw_to_linear(0xD5), 8);
        // Extremes.
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
    }

    #[test]
    fn every_code_round_trips() {
        for code in 0..=255u8 {
            // 0x7F and 0xFF are +0 and −0 in µ-law: both decode to 0 and encode as 0xFF.
            let back = linear_to_ulaw(ulaw_to_linear(code));
            assert!(
                back == code || (code == 0x7F && back == 0xFF),
                "µ {code:#x} → {back:#x}"
            );
            assert_eq!(linear_to_alaw(alaw_to_linear(code)), code, "A {code:#x}");
        }
    }

    #[test]
    fn quantisation_error_is_within_the_segment_step() {
        for s in (-32000i32..32000).step_by(7) {
            let s = s as i16;
            let u = i32::from(ulaw_to_linear(linear_to_ulaw(s)));
            let a = i32::from(alaw_to_linear(linear_to_alaw(s)));
            let tol = (i32::from(s).abs() / 16).max(16);
            assert!((u - i32::from(s)).abs() <= tol, "µ {s} → {u}");
            assert!((a - i32::from(s)).abs() <= tol, "A {s} → {a}");
        }
    }

    #[test]
    fn transcoding_keeps_the_signal() {
        for code in 0..=255u8 {
            let direct = ulaw_to_linear(code);
            let via_a = alaw_to_linear(ulaw_to_alaw(code));
            let tol = (i32::from(direct).abs() / 16).max(16);
            assert!((i32::from(direct) - i32::from(via_a)).abs() <= tol);
        }
    }
}
