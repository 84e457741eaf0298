# The C extension written out as explicit c.* instructions (so the assembler
# cannot pick the 32-bit form). Each routine stores its results into the array
# at a0 for rvc.c to check.
    .text
    .option push
    .option rvc

# void rvc_alu(u64 out[24])
    .globl rvc_alu
rvc_alu:
    c.li a1, -32
    c.sd a1, 0(a0)           # 0: c.li -32
    c.li a1, 31
    c.addi a1, -1
    c.sd a1, 8(a0)           # 1: 30
    li a1, 0x7fffffff
    c.addiw a1, 1
    c.sd a1, 16(a0)          # 2: c.addiw sign-extends: 0xffffffff80000000
    c.lui a1, 0xfffff        # imm -1 << 12
    c.sd a1, 24(a0)          # 3: 0xfffffffffffff000
    c.lui a1, 1
    c.sd a1, 32(a0)          # 4: 0x1000
    mv a2, sp
    c.addi16sp sp, -496
    sub a1, a2, sp
    c.addi16sp sp, 496
    c.sd a1, 40(a0)          # 5: 496
    c.addi4spn a1, sp, 1020
    sub a1, a1, sp
    c.sd a1, 48(a0)          # 6: 1020
    c.li a1, 1
    c.slli a1, 63
    c.sd a1, 56(a0)          # 7: 1 << 63
    c.srai a1, 63
    c.sd a1, 64(a0)          # 8: all ones
    c.srli a1, 60
    c.sd a1, 72(a0)          # 9: 0xf
    c.andi a1, -6
    c.sd a1, 80(a0)          # 10: 0xf & ~5 = 0xa
    c.li a2, 3
    c.sub a1, a2
    c.sd a1, 88(a0)          # 11: 7
    c.xor a1, a2
    c.sd a1, 96(a0)          # 12: 4
    c.or a1, a2
    c.sd a1, 104(a0)         # 13: 7
    c.and a1, a2
    c.sd a1, 112(a0)         # 14: 3
    li a1, 0x80000000
    c.li a2, 1
    c.subw a1, a2
    c.sd a1, 120(a0)         # 15: 0x7fffffff
    c.addw a1, a2
    c.sd a1, 128(a0)         # 16: 0xffffffff80000000
    c.mv a3, a1
    c.add a3, a2
    c.sd a3, 136(a0)         # 17: 0xffffffff80000001
    c.nop
    c.addi a1, 0             # hint form (nzimm 0): a no-op
    c.sd a1, 144(a0)         # 18: unchanged
    c.li a1, 0x1f
    c.slli a1, 32
    c.sd a1, 152(a0)         # 19: 0x1f00000000
    c.srli a1, 33
    c.sd a1, 160(a0)         # 20: 0xf
    ret

# void rvc_mem(u64 out[16], u64 *buf)   buf[0..3] preset by the caller
    .globl rvc_mem
rvc_mem:
    c.lw a2, 0(a1)
    c.sd a2, 0(a0)           # 0: c.lw sign-extends low word of buf[0]
    c.ld a2, 8(a1)
    c.sd a2, 8(a0)           # 1: buf[1]
    c.lw a2, 124(a1)
    c.sd a2, 16(a0)          # 2: c.lw max offset (buf word 31)
    c.ld a2, 248(a1)
    c.sd a2, 24(a0)          # 3: c.ld max offset (buf[31])
    li a2, 0x1122334455667788
    c.sw a2, 16(a1)          # low word of buf[2]
    c.sd a2, 24(a1)          # buf[3]
    addi sp, sp, -64
    c.sdsp a2, 8(sp)
    c.ldsp a3, 8(sp)
    c.sd a3, 32(a0)          # 4: c.sdsp/c.ldsp round trip
    c.swsp a2, 20(sp)
    c.lwsp a3, 20(sp)
    c.sd a3, 40(a0)          # 5: c.lwsp sign-extends 0x55667788
    li a2, -1
    c.swsp a2, 16(sp)
    c.lwsp a3, 16(sp)
    c.sd a3, 48(a0)          # 6: all ones
    addi sp, sp, 64
    ret

# u64 rvc_jumps(void): returns a bit mask of the paths that ran
    .globl rvc_jumps
rvc_jumps:
    c.li a0, 0
    c.j 1f
    c.li a0, 31              # skipped
1:  ori a0, a0, 1
    c.li a1, 0
    c.beqz a1, 2f
    c.li a0, 0               # skipped
2:  ori a0, a0, 2
    c.bnez a1, 3f
    ori a0, a0, 4            # runs: a1 == 0
3:  c.li a1, 1
    c.bnez a1, 4f
    c.li a0, 0
4:  ori a0, a0, 8
    c.beqz a1, 5f
    ori a0, a0, 16           # runs: a1 != 0
5:  mv t1, ra
    la a2, 6f
    c.jalr a2                # ra = address after the c.jalr
7:  la a3, 7b
    bne a3, a4, 8f
    ori a0, a0, 32
8:  la a2, 9f
    c.jr a2
    c.li a0, 0
9:  ori a0, a0, 64
    # backward compressed branch
    c.li a1, 3
10: c.addi a1, -1
    c.bnez a1, 10b
    bnez a1, 11f
    ori a0, a0, 128
11: mv ra, t1
    ret
6:  mv a4, ra                # link of the c.jalr
    c.jr ra

    .option pop
