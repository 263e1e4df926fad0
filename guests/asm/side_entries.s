; Direct branches into the middle of a trace (bt: a block linked into one trace is entered
; there again, not translated a second time as the head of another trace):
;   1. a leaf function whose ret one trace inlined (the ret returns to that trace's
;      call), called again from a second site: that call must not enter the inlined
;      copy, or the ret would go back to the first site;
;   2. a jump to the fall-through block of a conditional branch in an earlier trace
;      (a new segment: enterable in both clocks);
;   3. a jump to a block an earlier trace linked after a jmp (the middle of a segment:
;      enterable only in the free clock, where nothing is counted);
;   4. the code of a block entered that way rewritten, then entered again: the side
;      entry must go with the trace it belongs to;
;   5. a loop whose head is a block in the middle of a trace, many times round.
; Each phase adds to ebx; the sum is printed (in hex) and checked.
; expect-exit: 0
; expect-serial: 00000a6b\n
bits 32
        xor ebx, ebx
; 1. leaf: the first call and its ret are linked into one trace; the second call is not
        call leaf                           ; +1
        add ebx, 10
        call leaf                           ; +1 (and back here, not after the first call)
        add ebx, 100
; 2. the jcc's fall-through (p2_fall) is in this trace; then jump straight to it
        xor ecx, ecx
        test ecx, ecx
        jnz p2_skip                         ; not taken: the trace goes on at p2_fall
p2_fall:
        add ebx, 1000                       ; +1000, twice
        inc ecx
        cmp ecx, 2
        jae p2_skip
        jmp p2_fall                         ; into the block the jcc above fell into
p2_skip:
; 3. a jmp linked in a trace, then its target entered from elsewhere
        xor ecx, ecx
        jmp p3_target                       ; linked: the trace goes on at p3_target
p3_pad: nop
p3_target:
        add ebx, 200                        ; +200, twice
        inc ecx
        cmp ecx, 2
        jb p3_back
        jmp p3_done
p3_back:
        jmp p3_target
p3_done:
; 4. rewrite the immediate of p4_code (a block entered mid-trace), then enter it again
        xor ecx, ecx
        jmp p4_code
p4_code:
        add ebx, 5                          ; 83 c3 05: 5, then 50
        inc ecx
        cmp ecx, 2
        jae p4_done
        mov byte ptr [p4_code + 2], 50
        jmp p4_code
p4_done:
; 5. a loop whose head is in the middle of this trace
        mov ecx, 100
        jmp p5_head                         ; linked
p5_head:
        add ebx, 1                          ; +100
        dec ecx
        jnz p5_head
; exit 0 if ebx is what the header says, after printing it in hex
        mov ecx, 8
hex:    rol ebx, 4
        mov eax, ebx
        and eax, 15
        mov al, byte ptr [digits + eax]
        mov dx, 0x3f8
        out dx, al
        loop hex
        mov al, 10
        out dx, al
        cmp ebx, 2667
        setne al
        out 0xf4, al
        hlt

leaf:   inc ebx
        ret

digits: .ascii "0123456789abcdef"
