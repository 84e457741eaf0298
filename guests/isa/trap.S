# Trap vectors of the ISA suite and the switch into S/U mode and back.
#
# Both the M and the S vector save every register except sp into a frame on a
# dedicated trap stack (found through mscratch/sscratch), call the C handler with
# the frame, and return with mret/sret. The C handler decides where to resume.
# Vectored mode enters through a table whose slot i is `j` to a stub that tags
# the frame with i, so the handler can report which slot was used.

#define FRAME 272
#define EXIT_MAGIC 0x5e5e

.macro SAVE_MOST            # all but x2 (sp), x5 (t0); sp points at the frame
    sd x1, 8(sp)
    sd x3, 24(sp)
    sd x4, 32(sp)
    .irp r, 6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    sd x\r, (\r*8)(sp)
    .endr
.endm

.macro RESTORE_ALL          # everything, sp last
    ld x1, 8(sp)
    .irp r, 3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    ld x\r, (\r*8)(sp)
    .endr
    ld sp, 16(sp)
.endm

    .text
    .option push
    .option norvc

# ---- machine mode ---------------------------------------------------------------
    .align 8
    .globl isa_mvec
isa_mvec:                    # vectored table: 16 four-byte slots
    j isa_mtrap
    .irp n, 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
    j mvec_stub_\n
    .endr

    .irp n, 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
mvec_stub_\n:
    csrrw sp, mscratch, sp
    addi sp, sp, -FRAME
    sd t0, 40(sp)
    li t0, \n
    j mtrap_common
    .endr

    .align 6
    .globl isa_mtrap
isa_mtrap:
    csrrw sp, mscratch, sp   # sp = M trap stack top, mscratch = interrupted sp
    addi sp, sp, -FRAME
    sd t0, 40(sp)
    li t0, 0
mtrap_common:
    sd t0, 0(sp)             # slot
    SAVE_MOST
    csrr t0, mscratch
    sd t0, 16(sp)
    addi t0, sp, FRAME
    csrw mscratch, t0
    mv a0, sp
    call isa_mtrap_c
    bnez a0, 1f
    RESTORE_ALL
    mret
1:  ld a0, 80(sp)            # leave the lower mode: enter_mode returns a0
    j leave_to_m

# ---- supervisor mode --------------------------------------------------------------
    .align 8
    .globl isa_svec
isa_svec:
    j isa_strap
    .irp n, 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
    j svec_stub_\n
    .endr

    .irp n, 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
svec_stub_\n:
    csrrw sp, sscratch, sp
    addi sp, sp, -FRAME
    sd t0, 40(sp)
    li t0, \n
    j strap_common
    .endr

    .align 6
    .globl isa_strap
isa_strap:
    csrrw sp, sscratch, sp
    addi sp, sp, -FRAME
    sd t0, 40(sp)
    li t0, 0
strap_common:
    sd t0, 0(sp)
    SAVE_MOST
    csrr t0, sscratch
    sd t0, 16(sp)
    addi t0, sp, FRAME
    csrw sscratch, t0
    mv a0, sp
    call isa_strap_c
    bnez a0, 1f
    RESTORE_ALL
    sret
1:  ld a0, 80(sp)            # forward the exit request from U to M
    li a7, EXIT_MAGIC
    ecall
2:  j 2b

# ---- entering and leaving S/U ----------------------------------------------------------
# u64 enter_mode(u64 mode, u64 pc, u64 arg, u64 sp, u64 exit_ra)
    .globl enter_mode
enter_mode:
    la t0, m_ctx
    sd ra, 0(t0)
    sd sp, 8(t0)
    sd gp, 16(t0)
    sd tp, 24(t0)
    .irp r, 8,9,18,19,20,21,22,23,24,25,26,27
    sd x\r, (\r*8)(t0)
    .endr
    li t1, 0x1800
    csrc mstatus, t1
    slli t1, a0, 11
    csrs mstatus, t1
    csrw mepc, a1
    mv a0, a2
    mv sp, a3
    mv ra, a4
    mret

leave_to_m:
    la t0, m_ctx
    ld ra, 0(t0)
    ld sp, 8(t0)
    ld gp, 16(t0)
    ld tp, 24(t0)
    .irp r, 8,9,18,19,20,21,22,23,24,25,26,27
    ld x\r, (\r*8)(t0)
    .endr
    ret

    .globl mode_exit
mode_exit:                   # where code run by enter_mode returns to
    li a7, EXIT_MAGIC
    ecall
1:  j 1b
    .option pop

    .bss
    .align 4
m_ctx: .skip 256
    .skip 4096
    .globl m_trap_stack_top
m_trap_stack_top:
    .skip 4096
    .globl s_trap_stack_top
s_trap_stack_top:
    .skip 8192
    .globl lower_stack_top
lower_stack_top:
    .skip 16
