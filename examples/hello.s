; Hello from the guest: print a line on COM1, then exit with code 0 through port 0xF4.
; Run it:  dbt run examples/hello.s          (add --engine hw|interp, --json)
bits 32
        mov esi, message
next:   lodsb                   ; al = next byte of the message
        test al, al
        jz done
        mov bl, al
        mov dx, 0x3fd           ; COM1 line status register
poll:   in al, dx
        test al, 0x20           ; transmitter holding register empty?
        jz poll
        mov al, bl
        mov dx, 0x3f8           ; COM1 transmit register
        out dx, al
        jmp next
done:   mov al, 0
        out 0xf4, al            ; debug exit: code 0
        hlt
message:
        .asciz "Hello from the guest\n"
