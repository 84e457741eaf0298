/* An operating system with nothing to do: a 100 Hz timer tick (as an idle kernel with
 * HZ=100 keeps) and WFI in between, forever. `disco bench overhead` runs it in the VMs
 * that idle beside the one it measures. Prints "idle: up" once its tick runs and
 * "idle: 100 ticks" a second later; never ends (stop the VM). */
#include "runtime.h"

#define TICK 100000 /* 10 ms of QEMU virt's 10 MHz timebase */

static volatile u64 ticks;

void timer_interrupt(u64 hart) {
    ticks = ticks + 1;
    CLINT_MTIMECMP[hart] = *CLINT_MTIME + TICK;
}

int main(u64 hartid, const void *fdt) {
    (void)fdt;
    if (hartid != 0) for (;;) __asm__ volatile("wfi");
    CLINT_MTIMECMP[0] = *CLINT_MTIME + TICK;
    __asm__ volatile("csrs mie, %0" : : "r"(1UL << 7));
    __asm__ volatile("csrsi mstatus, 8");
    puts("idle: up\n");
    int said = 0;
    for (;;) {
        __asm__ volatile("wfi");
        if (!said && ticks >= 100) {
            puts("idle: 100 ticks\n");
            said = 1;
        }
    }
}
