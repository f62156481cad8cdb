/**
 * Protocol constants. Sources: whitepaper (Donenfeld, NDSS 2017) §5.4 and
 * §6.1 "Preliminaries"; wireguard.com/protocol; wireguard-go device/constants.go
 * where the whitepaper leaves a number open.
 */

/** Times in milliseconds (whitepaper §6.1). */
export const REKEY_AFTER_TIME = 120_000;
export const REJECT_AFTER_TIME = 180_000;
export const REKEY_ATTEMPT_TIME = 90_000;
export const REKEY_TIMEOUT = 5_000;
export const KEEPALIVE_TIMEOUT = 10_000;
/** Jitter added to REKEY_TIMEOUT and to the new-handshake timer (wireguard-go: up to 1/3 s). */
export const REKEY_TIMEOUT_JITTER_MAX = 334;
/** Cookie secrets rotate and cookies expire after two minutes (whitepaper §5.4.7). */
export const COOKIE_REFRESH_TIME = 120_000;
/** At most one initiation per peer every 1/50 s is processed (wireguard-go HandshakeInitationRate). */
export const INITIATIONS_MIN_INTERVAL = 20;

/** Message counts (whitepaper §6.1). */
export const REKEY_AFTER_MESSAGES = 2 ** 60;
/**
 * 2^64 − 2^13 − 1 in the whitepaper. Counters are carried as JS numbers: a
 * counter at or above 2^53 is treated as past this limit. No peer can reach
 * 2^53 messages on one key within REJECT_AFTER_TIME, so this never rejects
 * a legitimate packet.
 */
export const REJECT_AFTER_MESSAGES = 2 ** 53 - 1;
/** REKEY_ATTEMPT_TIME / REKEY_TIMEOUT handshake attempts before giving up. */
export const MAX_TIMER_HANDSHAKES = REKEY_ATTEMPT_TIME / REKEY_TIMEOUT;

/** Replay window (RFC 6479 with 128 words of 64 bits, as the kernel and wireguard-go). */
export const REPLAY_WINDOW_BITS = 8192;
export const REPLAY_WINDOW_SIZE = REPLAY_WINDOW_BITS - 64; // 8128 usable

/** Handshake rate limiter (kernel ratelimiter.c): 20 packets/s, burst 5, per IPv4 address or IPv6 /64. */
export const HANDSHAKE_RATE_PER_SECOND = 20;
export const HANDSHAKE_RATE_BURST = 5;

/** Packets held per peer while a handshake is in progress (wireguard-go QueueStagedSize). */
export const STAGED_QUEUE_SIZE = 128;

/** Noise and WireGuard identifiers (wireguard.com/protocol "First Message"). */
export const CONSTRUCTION = new TextEncoder().encode('Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s');
export const IDENTIFIER = new TextEncoder().encode('WireGuard v1 zx2c4 Jason@zx2c4.com');
export const LABEL_MAC1 = new TextEncoder().encode('mac1----');
export const LABEL_COOKIE = new TextEncoder().encode('cookie--');

/** Transport overhead: 16-byte header + 16-byte tag; plaintext padded to 16 bytes. */
export const TRANSPORT_HEADER_LEN = 16;
export const PADDING_MULTIPLE = 16;
/** Outer overhead for MTU computations: IPv6 (40) + UDP (8) + header + tag; the interface default MTU is 1420. */
export const DEFAULT_MTU = 1420;
