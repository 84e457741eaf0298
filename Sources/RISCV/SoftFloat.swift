// IEEE 754 binary32 and binary64 arithmetic in software, with the rounding modes,
// exception flags and NaN rules of the RISC-V F and D extensions (QEMU's softfloat
// behaves the same way; it is the oracle of the FP test guest).
//
// Every operation works on the same unpacked form — a sign, an unbiased exponent and
// a 63-bit significand whose leading one is at bit 62 — and ends in one routine,
// `roundPack`, which rounds the exact result (or a result whose bits below the
// rounding position are exact up to a "sticky" bit that says whether anything
// non-zero was dropped) to the destination format. Because the intermediate is wide
// enough (products and fused multiply-adds are formed in 128 bits, quotients and
// square roots carry their remainder as the sticky bit), rounding happens exactly
// once and every flag follows from the exact result:
//
// - NX when anything non-zero lies below the rounding position;
// - UF when the result is tiny *after* rounding (RISC-V's choice) and inexact;
// - OF (with NX) when the rounded result exceeds the largest finite number;
// - DZ for a finite non-zero dividend over zero;
// - NV for invalid operations and any signalling-NaN operand.
//
// A NaN result is always the canonical NaN (RISC-V does not propagate payloads).
// No host floating-point instruction is used: the results do not depend on the
// host's rounding state, flush-to-zero settings or FMA support.

/// Accrued-exception bits, as in `fflags`.
enum FPFlag {
    static let inexact: UInt8 = 1, underflow: UInt8 = 2, overflow: UInt8 = 4
    static let divideByZero: UInt8 = 8, invalid: UInt8 = 16
}

/// The rounding modes of the `rm` field and `frm` (5 and 6 are reserved, 7 means
/// "dynamic": use frm).
enum FPRounding: UInt8 {
    case nearestEven = 0, towardZero = 1, down = 2, up = 3, nearestMaxMagnitude = 4
}

/// A binary interchange format (binary32 or binary64), held in the low bits of a `UInt64`.
struct FPFormat: Sendable {
    let exponentBits: Int
    let fractionBits: Int

    static let single = FPFormat(exponentBits: 8, fractionBits: 23)
    static let double = FPFormat(exponentBits: 11, fractionBits: 52)

    var bias: Int { (1 << (exponentBits - 1)) - 1 }
    var maxExponent: UInt64 { (1 << UInt64(exponentBits)) - 1 }
    var signBit: UInt64 { 1 << UInt64(exponentBits + fractionBits) }
    var fractionMask: UInt64 { (1 << UInt64(fractionBits)) - 1 }
    var infinity: UInt64 { maxExponent << UInt64(fractionBits) }
    var largestFinite: UInt64 { infinity - 1 }
    var canonicalNaN: UInt64 { infinity | (1 << UInt64(fractionBits - 1)) }
}

/// A value of some format, taken apart. For `.finite` the value is
/// `(significand / 2^62) * 2^exponent` with bit 62 of `significand` set (subnormal
/// inputs are normalized).
struct Unpacked {
    enum Kind { case zero, finite, infinity, quietNaN, signalingNaN }
    var kind: Kind
    var sign: Bool
    var exponent: Int = 0
    var significand: UInt64 = 0

    var isNaN: Bool { kind == .quietNaN || kind == .signalingNaN }

    init(_ bits: UInt64, _ format: FPFormat) {
        sign = bits & format.signBit != 0
        let e = (bits >> UInt64(format.fractionBits)) & format.maxExponent
        let fraction = bits & format.fractionMask
        if e == format.maxExponent {
            if fraction == 0 {
                kind = .infinity
            } else {
                kind = fraction >> UInt64(format.fractionBits - 1) != 0 ? .quietNaN : .signalingNaN
            }
        } else if e == 0 {
            guard fraction != 0 else { kind = .zero; return }
            kind = .finite
            let shift = fraction.leadingZeroBitCount - 1
            significand = fraction << UInt64(shift)
            exponent = 1 - format.bias - format.fractionBits - shift + 62
        } else {
            kind = .finite
            significand = (fraction | (1 << UInt64(format.fractionBits))) << UInt64(62 - format.fractionBits)
            exponent = Int(e) - format.bias
        }
    }
}

/// The arithmetic of one instruction: its rounding mode, and the flags it raises.
struct SoftFloat {
    let rounding: FPRounding
    var flags: UInt8 = 0

    init(_ rounding: FPRounding) { self.rounding = rounding }

    // MARK: - Helpers

    /// `x >> n`, with bit 0 set if any bit shifted out was set.
    static func shiftRightJam(_ x: UInt64, _ n: Int) -> UInt64 {
        if n <= 0 { return x }
        if n >= 64 { return x != 0 ? 1 : 0 }
        return (x >> UInt64(n)) | (x << UInt64(64 - n) != 0 ? 1 : 0)
    }

    static func shiftRightJam(_ x: UInt128, _ n: Int) -> UInt128 {
        if n <= 0 { return x }
        if n >= 128 { return x != 0 ? 1 : 0 }
        return (x >> UInt128(n)) | (x << UInt128(128 - n) != 0 ? 1 : 0)
    }

    mutating func invalid(_ format: FPFormat) -> UInt64 {
        flags |= FPFlag.invalid
        return format.canonicalNaN
    }

    func zero(_ negative: Bool, _ format: FPFormat) -> UInt64 { negative ? format.signBit : 0 }

    func infinity(_ negative: Bool, _ format: FPFormat) -> UInt64 {
        format.infinity | (negative ? format.signBit : 0)
    }

    /// The sign of an exact zero sum of operands of opposite signs: -0 only when
    /// rounding down.
    var zeroSumIsNegative: Bool { rounding == .down }

    // MARK: - Rounding

    /// Rounds `(significand / 2^62) * 2^exponent` (bit 62 of `significand` set; bit 0
    /// may be a sticky bit) to `format`, raising NX, UF and OF as RISC-V defines them.
    mutating func roundPack(_ sign: Bool, _ exponent: Int, _ significand: UInt64, _ format: FPFormat) -> UInt64 {
        let shift = 62 - format.fractionBits
        let mask: UInt64 = (1 << UInt64(shift)) - 1, half: UInt64 = 1 << UInt64(shift - 1)
        let increment: UInt64
        switch rounding {
        case .nearestEven, .nearestMaxMagnitude: increment = half
        case .towardZero: increment = 0
        case .down: increment = sign ? mask : 0
        case .up: increment = sign ? 0 : mask
        }
        var biased = exponent + format.bias
        if biased >= Int(format.maxExponent) { return overflow(sign, format) }
        var sig = significand
        var tiny = false
        if biased <= 0 {
            // Tininess after rounding: rounded to the format's precision with an
            // unbounded exponent, is the result below the smallest normal number? Only
            // a value in the binade just below it (biased exponent 0) can round up to it.
            tiny = biased < 0 || sig &+ increment < (1 << 63)
            sig = Self.shiftRightJam(sig, 1 - biased)
            biased = 0
        }
        let roundBits = sig & mask
        var rounded = (sig &+ increment) >> UInt64(shift)
        if rounding == .nearestEven && roundBits == half { rounded &= ~1 }
        // `rounded` holds the leading one at bit `fractionBits` (for a subnormal result
        // it may be clear); adding it to the exponent field minus one carries a
        // rounding overflow of the significand into the exponent.
        let packed = biased == 0 ? rounded : (UInt64(biased - 1) << UInt64(format.fractionBits)) &+ rounded
        if packed >> UInt64(format.fractionBits) >= format.maxExponent { return overflow(sign, format) }
        if roundBits != 0 {
            flags |= FPFlag.inexact
            if tiny { flags |= FPFlag.underflow }
        }
        return packed | (sign ? format.signBit : 0)
    }

    private mutating func overflow(_ sign: Bool, _ format: FPFormat) -> UInt64 {
        flags |= FPFlag.overflow | FPFlag.inexact
        let toInfinity: Bool
        switch rounding {
        case .nearestEven, .nearestMaxMagnitude: toInfinity = true
        case .towardZero: toInfinity = false
        case .down: toInfinity = sign
        case .up: toInfinity = !sign
        }
        return (toInfinity ? format.infinity : format.largestFinite) | (sign ? format.signBit : 0)
    }

    /// `roundPack` for a non-zero significand with its leading one anywhere.
    mutating func normalizeRoundPack(_ sign: Bool, _ exponent: Int, _ significand: UInt64, _ format: FPFormat) -> UInt64 {
        let zeros = significand.leadingZeroBitCount
        if zeros == 0 { return roundPack(sign, exponent + 1, Self.shiftRightJam(significand, 1), format) }
        return roundPack(sign, exponent - (zeros - 1), significand << UInt64(zeros - 1), format)
    }

    // MARK: - Arithmetic

    /// x + y (for x − y, flip y's sign bit first).
    mutating func add(_ x: UInt64, _ y: UInt64, _ format: FPFormat) -> UInt64 {
        let a = Unpacked(x, format), b = Unpacked(y, format)
        if a.isNaN || b.isNaN {
            if a.kind == .signalingNaN || b.kind == .signalingNaN { flags |= FPFlag.invalid }
            return format.canonicalNaN
        }
        if a.kind == .infinity {
            if b.kind == .infinity && a.sign != b.sign { return invalid(format) }
            return x
        }
        if b.kind == .infinity { return y }
        if a.kind == .zero {
            if b.kind == .zero { return zero(a.sign == b.sign ? a.sign : zeroSumIsNegative, format) }
            return y
        }
        if b.kind == .zero { return x }
        let aIsLarger = a.exponent > b.exponent || (a.exponent == b.exponent && a.significand >= b.significand)
        let large = aIsLarger ? a : b, small = aIsLarger ? b : a
        let aligned = Self.shiftRightJam(small.significand, large.exponent - small.exponent)
        if a.sign == b.sign {
            return normalizeRoundPack(large.sign, large.exponent, large.significand &+ aligned, format)
        }
        let difference = large.significand &- aligned
        if difference == 0 { return zero(zeroSumIsNegative, format) }
        return normalizeRoundPack(large.sign, large.exponent, difference, format)
    }

    mutating func multiply(_ x: UInt64, _ y: UInt64, _ format: FPFormat) -> UInt64 {
        let a = Unpacked(x, format), b = Unpacked(y, format)
        let sign = a.sign != b.sign
        if a.isNaN || b.isNaN {
            if a.kind == .signalingNaN || b.kind == .signalingNaN { flags |= FPFlag.invalid }
            return format.canonicalNaN
        }
        if a.kind == .infinity || b.kind == .infinity {
            if a.kind == .zero || b.kind == .zero { return invalid(format) }
            return infinity(sign, format)
        }
        if a.kind == .zero || b.kind == .zero { return zero(sign, format) }
        let (high, low) = a.significand.multipliedFullWidth(by: b.significand)
        // The product is (high:low) / 2^124 · 2^(ea+eb); keep it as a 64-bit
        // significand over 2^62 with the bits below as a sticky bit.
        let product = (high << 2) | (low >> 62) | (low & ((1 << 62) - 1) != 0 ? 1 : 0)
        return normalizeRoundPack(sign, a.exponent + b.exponent, product, format)
    }

    mutating func divide(_ x: UInt64, _ y: UInt64, _ format: FPFormat) -> UInt64 {
        let a = Unpacked(x, format), b = Unpacked(y, format)
        let sign = a.sign != b.sign
        if a.isNaN || b.isNaN {
            if a.kind == .signalingNaN || b.kind == .signalingNaN { flags |= FPFlag.invalid }
            return format.canonicalNaN
        }
        if a.kind == .infinity {
            if b.kind == .infinity { return invalid(format) }
            return infinity(sign, format)
        }
        if b.kind == .infinity { return zero(sign, format) }
        if b.kind == .zero {
            if a.kind == .zero { return invalid(format) }
            flags |= FPFlag.divideByZero
            return infinity(sign, format)
        }
        if a.kind == .zero { return zero(sign, format) }
        // Quotient of (a · 2^62 or a · 2^63) by b: in [2^62, 2^63), its remainder the sticky bit.
        var exponent = a.exponent - b.exponent
        let dividend: (high: UInt64, low: UInt64)
        if a.significand >= b.significand {
            dividend = (a.significand >> 2, a.significand << 62)
        } else {
            dividend = (a.significand >> 1, a.significand << 63)
            exponent -= 1
        }
        let (quotient, remainder) = b.significand.dividingFullWidth(dividend)
        return roundPack(sign, exponent, quotient | (remainder != 0 ? 1 : 0), format)
    }

    mutating func squareRoot(_ x: UInt64, _ format: FPFormat) -> UInt64 {
        let a = Unpacked(x, format)
        switch a.kind {
        case .signalingNaN: return invalid(format)
        case .quietNaN: return format.canonicalNaN
        case .zero: return x
        case .infinity: return a.sign ? invalid(format) : x
        case .finite: break
        }
        if a.sign { return invalid(format) }
        // sqrt(s / 2^62 · 2^e) with e made even = sqrt(s · 2^62) / 2^62 · 2^(e/2).
        var exponent = a.exponent
        var s = UInt128(a.significand)
        if exponent & 1 != 0 {
            s <<= 1
            exponent -= 1
        }
        let n = s << 62
        let root = Self.integerSquareRoot(n)
        let exact = root * root == n
        return roundPack(false, exponent / 2, UInt64(root) | (exact ? 0 : 1), format)
    }

    /// floor(sqrt(n)) for n ≥ 1.
    static func integerSquareRoot(_ n: UInt128) -> UInt128 {
        let estimate = (Double(UInt64(n >> 64)) * 0x1p64 + Double(UInt64(truncatingIfNeeded: n))).squareRoot()
        var r = UInt128(estimate)
        if r == 0 { r = 1 }
        for _ in 0..<2 { r = (r + n / r) >> 1 }
        while r * r > n { r -= 1 }
        while (r + 1) * (r + 1) <= n { r += 1 }
        return r
    }

    /// (±x · y) ± z with one rounding: FMADD, FMSUB (`negateAddend`), FNMSUB
    /// (`negateProduct`) and FNMADD (both); the negations apply to the operands.
    mutating func fusedMultiplyAdd(_ x: UInt64, _ y: UInt64, _ z: UInt64, _ format: FPFormat,
                                   negateProduct: Bool, negateAddend: Bool) -> UInt64 {
        let a = Unpacked(x, format), b = Unpacked(y, format)
        var c = Unpacked(z, format)
        if negateAddend { c.sign.toggle() }
        let productSign = (a.sign != b.sign) != negateProduct
        let infinityTimesZero = (a.kind == .infinity && b.kind == .zero) || (a.kind == .zero && b.kind == .infinity)
        if a.isNaN || b.isNaN || c.isNaN {
            if a.kind == .signalingNaN || b.kind == .signalingNaN || c.kind == .signalingNaN || infinityTimesZero {
                flags |= FPFlag.invalid
            }
            return format.canonicalNaN
        }
        if infinityTimesZero { return invalid(format) }
        if a.kind == .infinity || b.kind == .infinity {
            if c.kind == .infinity && c.sign != productSign { return invalid(format) }
            return infinity(productSign, format)
        }
        if c.kind == .infinity { return infinity(c.sign, format) }
        if a.kind == .zero || b.kind == .zero {
            if c.kind == .zero { return zero(productSign == c.sign ? c.sign : zeroSumIsNegative, format) }
            return z ^ (negateAddend ? format.signBit : 0)
        }
        let productExponent = a.exponent + b.exponent
        if c.kind == .zero {
            let (high, low) = a.significand.multipliedFullWidth(by: b.significand)
            let product = (high << 2) | (low >> 62) | (low & ((1 << 62) - 1) != 0 ? 1 : 0)
            return normalizeRoundPack(productSign, productExponent, product, format)
        }
        // Both terms over 2^124: the product exactly, the addend shifted up by 62. Where
        // the sum can cancel (exponents within 2) the shifts lose nothing: products have
        // at least 20 trailing zero bits and addends 72.
        let product = UInt128(a.significand) * UInt128(b.significand)
        let addend = UInt128(c.significand) << 62
        let top = max(productExponent, c.exponent)
        let p = Self.shiftRightJam(product, top - productExponent)
        let q = Self.shiftRightJam(addend, top - c.exponent)
        let sum: UInt128, sign: Bool
        if productSign == c.sign {
            sum = p + q
            sign = productSign
        } else if p >= q {
            sum = p - q
            sign = productSign
        } else {
            sum = q - p
            sign = c.sign
        }
        if sum == 0 { return zero(zeroSumIsNegative, format) }
        let leading = 127 - sum.leadingZeroBitCount
        let significand = leading > 62
            ? UInt64(truncatingIfNeeded: Self.shiftRightJam(sum, leading - 62))
            : UInt64(truncatingIfNeeded: sum) << UInt64(62 - leading)
        return roundPack(sign, top + leading - 124, significand, format)
    }

    // MARK: - Conversions

    /// A value of one format in another (FCVT.S.D rounds; FCVT.D.S is exact).
    mutating func convert(_ x: UInt64, from source: FPFormat, to target: FPFormat) -> UInt64 {
        let a = Unpacked(x, source)
        switch a.kind {
        case .signalingNaN: return invalid(target)
        case .quietNaN: return target.canonicalNaN
        case .zero: return zero(a.sign, target)
        case .infinity: return infinity(a.sign, target)
        case .finite: return roundPack(a.sign, a.exponent, a.significand, target)
        }
    }

    /// An integer (its magnitude and sign) in `format`.
    mutating func fromInteger(magnitude: UInt64, negative: Bool, _ format: FPFormat) -> UInt64 {
        if magnitude == 0 { return 0 }
        return normalizeRoundPack(negative, 62, magnitude, format)
    }

    /// FCVT to an integer of `bits` (32 or 64) bits, signed or not: the register value
    /// (32-bit results sign-extended). Out-of-range values and NaN saturate with NV
    /// (and no NX), as the spec's table says: NaN and +∞ give the largest value.
    mutating func toInteger(_ x: UInt64, _ format: FPFormat, signed: Bool, bits: Int) -> UInt64 {
        let largest: UInt64 = signed ? (1 << UInt64(bits - 1)) - 1 : (bits == 64 ? .max : (1 << 32) - 1)
        let smallestMagnitude: UInt64 = signed ? 1 << UInt64(bits - 1) : 0
        func register(_ v: UInt64) -> UInt64 { bits == 64 ? v : Hart.sext32(v) }
        let a = Unpacked(x, format)
        let saturated = register(a.sign && a.kind != .quietNaN && a.kind != .signalingNaN
                                 ? 0 &- smallestMagnitude : largest)
        let magnitude: UInt64
        var inexact = false
        switch a.kind {
        case .quietNaN, .signalingNaN, .infinity:
            flags |= FPFlag.invalid
            return saturated
        case .zero:
            return 0
        case .finite:
            if a.exponent >= 64 {
                flags |= FPFlag.invalid
                return saturated
            }
            if a.exponent >= 62 {
                magnitude = a.significand << UInt64(a.exponent - 62)
            } else {
                let shift = 62 - a.exponent
                let integer = shift >= 64 ? 0 : a.significand >> UInt64(shift)
                let fraction = shift >= 64 ? a.significand : a.significand & ((1 << UInt64(shift)) - 1)
                // Compare the fraction with one half (2^(shift-1)).
                let aboveHalf: Bool, isHalf: Bool
                if shift - 1 >= 64 {
                    aboveHalf = false
                    isHalf = false
                } else {
                    let half: UInt64 = 1 << UInt64(shift - 1)
                    aboveHalf = fraction > half
                    isHalf = fraction == half
                }
                inexact = fraction != 0
                let up: Bool
                switch rounding {
                case .nearestEven: up = aboveHalf || (isHalf && integer & 1 != 0)
                case .nearestMaxMagnitude: up = aboveHalf || isHalf
                case .towardZero: up = false
                case .down: up = a.sign && inexact
                case .up: up = !a.sign && inexact
                }
                magnitude = integer + (up ? 1 : 0)
            }
        }
        if a.sign {
            if magnitude == 0 {
                if inexact { flags |= FPFlag.inexact }
                return 0
            }
            if magnitude > smallestMagnitude {
                flags |= FPFlag.invalid
                return saturated
            }
            if inexact { flags |= FPFlag.inexact }
            return register(0 &- magnitude)
        }
        if magnitude > largest {
            flags |= FPFlag.invalid
            return saturated
        }
        if inexact { flags |= FPFlag.inexact }
        return register(magnitude)
    }

    // MARK: - Comparisons, min/max, classification

    /// A key that orders non-NaN values of `format` as numbers, with −0 below +0.
    static func orderKey(_ x: UInt64, _ format: FPFormat) -> UInt64 {
        x & format.signBit != 0 ? (~x & (format.signBit | (format.signBit - 1))) : x | format.signBit
    }

    /// FMIN/FMAX: IEEE 754-2019 minimumNumber/maximumNumber. A NaN operand gives the
    /// other operand, two NaNs the canonical NaN; signalling NaNs raise NV; −0 < +0.
    mutating func minMax(_ x: UInt64, _ y: UInt64, _ format: FPFormat, maximum: Bool) -> UInt64 {
        let a = Unpacked(x, format), b = Unpacked(y, format)
        if a.kind == .signalingNaN || b.kind == .signalingNaN { flags |= FPFlag.invalid }
        if a.isNaN && b.isNaN { return format.canonicalNaN }
        if a.isNaN { return y }
        if b.isNaN { return x }
        let xBelow = Self.orderKey(x, format) < Self.orderKey(y, format)
        return xBelow != maximum ? x : y
    }

    /// FEQ (quiet: NV only for a signalling NaN), FLT and FLE (signalling: NV for any NaN).
    enum Comparison { case equal, less, lessOrEqual }

    mutating func compare(_ x: UInt64, _ y: UInt64, _ format: FPFormat, _ comparison: Comparison) -> Bool {
        let a = Unpacked(x, format), b = Unpacked(y, format)
        if a.isNaN || b.isNaN {
            if comparison != .equal || a.kind == .signalingNaN || b.kind == .signalingNaN { flags |= FPFlag.invalid }
            return false
        }
        let bothZero = a.kind == .zero && b.kind == .zero
        switch comparison {
        case .equal: return bothZero || x == y
        case .less: return !bothZero && Self.orderKey(x, format) < Self.orderKey(y, format)
        case .lessOrEqual: return bothZero || Self.orderKey(x, format) <= Self.orderKey(y, format)
        }
    }

    /// FCLASS: one bit set, 0 (−∞) … 7 (+∞), 8 signalling NaN, 9 quiet NaN.
    static func classify(_ x: UInt64, _ format: FPFormat) -> UInt64 {
        let a = Unpacked(x, format)
        let subnormal = (x >> UInt64(format.fractionBits)) & format.maxExponent == 0
        let bit: Int
        switch a.kind {
        case .signalingNaN: bit = 8
        case .quietNaN: bit = 9
        case .infinity: bit = a.sign ? 0 : 7
        case .zero: bit = a.sign ? 3 : 4
        case .finite: bit = subnormal ? (a.sign ? 2 : 5) : (a.sign ? 1 : 6)
        }
        return 1 << UInt64(bit)
    }
}
