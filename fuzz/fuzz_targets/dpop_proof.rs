//! A DPoP proof (RFC 9449): the input is the proof, then on later lines the request's public
//! URL and its access token. Never a panic; a proof over 8 KiB is refused as too large before
//! anything is parsed; an accepted proof names its key's thumbprint (43 base64url characters,
//! a SHA-256); and `htu` normalisation is idempotent (oracle: normalising twice changes
//! nothing), so a URL and its normalised spelling are one URL to the guard.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.splitn(3, '\n');
    let proof = lines.next().unwrap_or_default();
    let url = lines.next().unwrap_or("https://api.example/orders");
    let token = lines.next().unwrap_or("token");
    if let Some(once) = api_guard::fuzzing::dpop_htu(url) {
        assert_eq!(
            api_guard::fuzzing::dpop_htu(&once).as_deref(),
            Some(once.as_str()),
            "normalising {url:?} twice changed it"
        );
    }
    match api_guard::fuzzing::dpop_proof(proof, url, token) {
        Ok(thumbprint) => assert!(
            thumbprint.len() == 43
                && thumbprint
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "not a SHA-256 thumbprint: {thumbprint:?}"
        ),
        Err(code) if proof.len() > api_guard::fuzzing::MAX_DPOP_PROOF_BYTES => {
            assert_eq!(code, "dpop_too_large", "a {}-byte proof", proof.len())
        }
        Err(_) => {}
    }
});
