# Entry for every hart (M-mode, a0 = hart id, a1 = device tree), as on QEMU virt
# with -bios none. Each hart gets a 16 KiB stack; hart 0 clears .bss and releases
# the others, which then call main too.
    .section .text.start
    .globl _start
_start:
    la t0, trap_entry
    csrw mtvec, t0
    li t0, 8
    bgeu a0, t0, park             # at most 8 harts
    la sp, __stacks
    addi t0, a0, 1
    li t1, 16384
    mul t0, t0, t1
    add sp, sp, t0
    bnez a0, wait_bss
    la t0, __bss_start
    la t1, __bss_end
1:  bgeu t0, t1, 2f
    sd zero, 0(t0)
    addi t0, t0, 8
    j 1b
2:  fence
    la t0, bss_ready
    li t1, 1
    sw t1, 0(t0)
    j enter
wait_bss:
    la t0, bss_ready
3:  lw t1, 0(t0)
    beqz t1, 3b
enter:
    call main
park:
    wfi
    j park

    .align 4
trap_entry:                       # save every caller-saved register around the C handler
    addi sp, sp, -128
    sd ra, 0(sp)
    sd t0, 8(sp)
    sd t1, 16(sp)
    sd t2, 24(sp)
    sd t3, 32(sp)
    sd t4, 40(sp)
    sd t5, 48(sp)
    sd t6, 56(sp)
    sd a0, 64(sp)
    sd a1, 72(sp)
    sd a2, 80(sp)
    sd a3, 88(sp)
    sd a4, 96(sp)
    sd a5, 104(sp)
    sd a6, 112(sp)
    sd a7, 120(sp)
    csrr a0, mcause
    call trap_handler
    ld ra, 0(sp)
    ld t0, 8(sp)
    ld t1, 16(sp)
    ld t2, 24(sp)
    ld t3, 32(sp)
    ld t4, 40(sp)
    ld t5, 48(sp)
    ld t6, 56(sp)
    ld a0, 64(sp)
    ld a1, 72(sp)
    ld a2, 80(sp)
    ld a3, 88(sp)
    ld a4, 96(sp)
    ld a5, 104(sp)
    ld a6, 112(sp)
    ld a7, 120(sp)
    addi sp, sp, 128
    mret

    .section .data
    .globl bss_ready
bss_ready: .word 0
