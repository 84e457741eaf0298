/* MMIO from every hart: the harts take turns (a ticket in memory) to read the
 * virtio-mmio slots' identification registers and print what they found, so on a
 * cluster the VCPUs away from the VM's device node read devices remotely, many
 * times. The last slot holds the first disk (QEMU's -drive if=virtio order), so two
 * VMs that differ only in their disks print different device ids. */
#include "runtime.h"

#define VIRTIO(slot, reg) (*(volatile u32 *)(0x10001000UL + 0x1000UL * (slot) + (reg)))
#define ROUNDS 8

static volatile u32 turn;
static int harts;

static void check_slots(u64 hartid, u32 round) {
    u32 ids = 0;
    for (int slot = 0; slot < 8; slot++) {
        if (VIRTIO(slot, 0x000) != 0x74726976 || VIRTIO(slot, 0x004) != 2 || VIRTIO(slot, 0x00c) != 0x554d4551) {
            puts("mmio: bad identification in slot ");
            put_u64((u64)slot);
            puts("\n");
            fail(3);
        }
        ids = ids * 10 + VIRTIO(slot, 0x008);   /* device id: 0 empty, 2 block */
    }
    puts("mmio: round ");
    put_u64(round);
    puts(" hart ");
    put_u64(hartid);
    puts(" device ids ");
    put_u64(ids);
    puts("\n");
}

int main(u64 hartid, const void *fdt) {
    harts = fdt_count_cpus(fdt);
    if (harts > 8) harts = 8;
    if ((int)hartid >= harts) for (;;) __asm__ volatile("wfi");
    for (u32 round = 0; round < ROUNDS; round++) {
        while (turn != round * (u32)harts + (u32)hartid) __asm__ volatile("pause");
        check_slots(hartid, round);
        __asm__ volatile("fence" ::: "memory");
        turn = turn + 1;
    }
    if (hartid == 0) {
        while (turn != ROUNDS * (u32)harts) __asm__ volatile("pause");
        puts("mmio: done\n");
        pass();
    }
    for (;;) __asm__ volatile("wfi");
}
