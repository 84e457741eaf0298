/* A tiny S-mode "kernel" with the Linux RISC-V Image header, so that QEMU and
 * disco load it as they load Linux (after OpenSBI's fw_jump). */
    .section .text.head, "ax"
    .globl _start
_start:
    j       entry                   /* code0 */
    .balign 8                       /* code1: padding */
    .dword  0x200000                /* text_offset: 2 MiB from the start of RAM, as RV64 Linux */
    .dword  _end - _start           /* image_size: file plus .bss */
    .dword  0                       /* flags: little-endian */
    .word   2                       /* version 0.2 */
    .word   0                       /* res1 */
    .dword  0                       /* res2 */
    .ascii  "RISCV\0\0\0"           /* magic (deprecated) */
    .ascii  "RSC\x05"               /* magic2 */
    .word   0                       /* res3 */

    .text
entry:
    la      sp, stack_top
    la      t0, __bss_start
    la      t1, _end
1:  bgeu    t0, t1, 2f
    sd      zero, 0(t0)
    addi    t0, t0, 8
    j       1b
2:  la      a2, _start              /* pc-relative: where we were loaded */
    call    image_main
3:  wfi
    j       3b

    .bss
    .balign 16
    .space  4096
stack_top:
