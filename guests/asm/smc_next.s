; A store that patches the very next instruction in the same block: x86 requires
; the new instruction to run (SDM Vol. 3A §8.1.3). The translation of the block was
; made before the store, so a translator must notice the write and retranslate
; from the next instruction.
; expect-exit: 0
; expect-serial: new\n
; count-skew: hw +1 (unicorn's counter sees a store that rewrites its own translation
;   block twice: the block is invalidated and the store restarted in a fresh one)
bits 32
        mov byte ptr [target + 1], 'n'   ; mov al, 'o' -> mov al, 'n'
target: mov al, 'o'                       ; b0 6f
        call putc
        mov al, 'e'
        call putc
        mov al, 'w'
        call putc
        mov al, 10
        call putc
        xor al, al
        out 0xf4, al
        hlt
putc:   mov dx, 0x3f8
        out dx, al
        ret
