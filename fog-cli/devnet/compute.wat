;; The devnet's sample task: a deterministic FNV-style checksum over
;; `argv[1]` iterations (default 1,000,000), printed in decimal. Same input,
;; same output and the same fuel on every honest node, so replicas can be
;; compared.
(module
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; 0: argc, 4: argv buffer size, 16..80: argv pointers, 256..2304: argv
  ;; strings, 2900: iovec, 2908: bytes written, 3000..3100: output digits.
  (func $parse (param $p i32) (result i64)
    (local $n i64) (local $c i32)
    (block $done
      (loop $next
        (local.set $c (i32.load8_u (local.get $p)))
        (br_if $done (i32.lt_u (local.get $c) (i32.const 48)))
        (br_if $done (i32.gt_u (local.get $c) (i32.const 57)))
        (local.set $n
          (i64.add
            (i64.mul (local.get $n) (i64.const 10))
            (i64.extend_i32_u (i32.sub (local.get $c) (i32.const 48)))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $next)))
    (local.get $n))
  (func (export "_start")
    (local $iters i64) (local $i i64) (local $acc i64) (local $pos i32) (local $len i32)
    (drop (call $args_sizes_get (i32.const 0) (i32.const 4)))
    (if (i32.gt_u (i32.load (i32.const 0)) (i32.const 16)) (then unreachable))
    (if (i32.gt_u (i32.load (i32.const 4)) (i32.const 2048)) (then unreachable))
    (drop (call $args_get (i32.const 16) (i32.const 256)))
    (local.set $iters (i64.const 1000000))
    (if (i32.ge_u (i32.load (i32.const 0)) (i32.const 2))
      (then (local.set $iters (call $parse (i32.load (i32.const 20))))))
    (local.set $acc (i64.const 1469598103934665603))
    (block $end
      (loop $loop
        (br_if $end (i64.ge_u (local.get $i) (local.get $iters)))
        (local.set $acc
          (i64.mul (i64.xor (local.get $acc) (local.get $i)) (i64.const 1099511628211)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $loop)))
    (local.set $pos (i32.const 3100))
    (i32.store8 (local.get $pos) (i32.const 10))
    (local.set $len (i32.const 1))
    (loop $digits
      (local.set $pos (i32.sub (local.get $pos) (i32.const 1)))
      (i32.store8 (local.get $pos)
        (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $acc) (i64.const 10)))))
      (local.set $len (i32.add (local.get $len) (i32.const 1)))
      (local.set $acc (i64.div_u (local.get $acc) (i64.const 10)))
      (br_if $digits (i64.ne (local.get $acc) (i64.const 0))))
    (i32.store (i32.const 2900) (local.get $pos))
    (i32.store (i32.const 2904) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 2900) (i32.const 1) (i32.const 2908)))))
