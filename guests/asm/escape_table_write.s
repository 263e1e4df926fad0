; Escape attempt: overwrite the indirect-branch lookup table (where bt keeps it),
; e.g. to send a return to an address of the guest's choice. It must fault.
; expect-fault
; expect-serial:
; qemu: a PC ignores the stores to unassigned memory; the ret takes its address from unassigned
;   memory past the top of RAM and the guest runs astray until the budget ends (dbt's machine
;   faults at the first store)
bits 32
        mov eax, 0x100000
        mov dword ptr [0xf0400000], eax
        mov dword ptr [0xf0400004], eax
        ret
