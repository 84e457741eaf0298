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
trap_entry:                       # machine software interrupts: acknowledge and count
    addi sp, sp, -32
    sd t0, 0(sp)
    sd t1, 8(sp)
    sd a0, 16(sp)
    sd ra, 24(sp)
    csrr a0, mcause
    call trap_handler
    ld t0, 0(sp)
    ld t1, 8(sp)
    ld a0, 16(sp)
    ld ra, 24(sp)
    addi sp, sp, 32
    mret

    .section .data
    .globl bss_ready
bss_ready: .word 0
