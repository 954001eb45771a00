//! What a secured bus needs, made by the test: a certificate authority with a server and
//! a client certificate (`rcgen`), a second authority nobody trusts, and the decentralised
//! authentication chain of NATS (an operator, an account with JetStream, a user and its
//! `.creds` file) signed with NKeys. Secret files are written 0600.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// Writes `text` to `dir/name`, 0600 (what a secret file should be), returns the path.
pub fn write_secret(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write secret");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
    p
}

/// PEM files of a test PKI.
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// An authority that signed none of these.
    pub rogue_ca: PathBuf,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

fn leaf(
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
    issuer: &CertifiedIssuer<'_, KeyPair>,
) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .expect("leaf params");
    p.distinguished_name
        .push(DnType::CommonName, names.first().copied().unwrap_or("leaf"));
    p.extended_key_usages = vec![usage];
    let cert = p.signed_by(&key, issuer).expect("sign leaf");
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    pub fn generate(dir: &Path) -> Pki {
        let ca = CertifiedIssuer::self_signed(
            ca_params("tocsin test CA"),
            KeyPair::generate().expect("CA key"),
        )
        .expect("CA");
        let rogue = CertifiedIssuer::self_signed(
            ca_params("somebody else's CA"),
            KeyPair::generate().expect("rogue key"),
        )
        .expect("rogue CA");
        let (server_cert, server_key) = leaf(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
            &ca,
        );
        let (client_cert, client_key) =
            leaf(&["rx-a.station"], ExtendedKeyUsagePurpose::ClientAuth, &ca);
        let public = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).expect("write pem");
            p
        };
        Pki {
            ca: public("ca.pem", &ca.pem()),
            server_cert: public("server.pem", &server_cert),
            server_key: write_secret(dir, "server-key.pem", &server_key),
            client_cert: public("client.pem", &client_cert),
            client_key: write_secret(dir, "client-key.pem", &client_key),
            rogue_ca: public("rogue-ca.pem", &rogue.pem()),
        }
    }
}

/// base64url without padding, as JWTs use it.
fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A NATS JWT (v2) with these claims, signed by `issuer`.
fn jwt(issuer: &nkeys::KeyPair, subject: &str, name: &str, nats: serde_json::Value) -> String {
    let header = b64url(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let claims = serde_json::json!({
        "jti": format!("{name}-{subject}"),
        "iat": 1_700_000_000u64,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let body = b64url(claims.to_string().as_bytes());
    let signed = format!("{header}.{body}");
    let sig = issuer.sign(signed.as_bytes()).expect("sign jwt");
    format!("{signed}.{}", b64url(&sig))
}

/// An operator, a system account, an account with JetStream and one user of it.
pub struct Decentralised {
    /// Lines for a nats-server configuration file.
    pub server_config: String,
    /// The user's `.creds` file (0600).
    pub creds: PathBuf,
    /// The user's seed, to check it never shows.
    pub user_seed: String,
}

impl Decentralised {
    pub fn generate(dir: &Path) -> Decentralised {
        let operator = nkeys::KeyPair::new_operator();
        let system = nkeys::KeyPair::new_account();
        let account = nkeys::KeyPair::new_account();
        let user = nkeys::KeyPair::new_user();
        let op_jwt = jwt(
            &operator,
            &operator.public_key(),
            "tocsin-test-operator",
            serde_json::json!({"type": "operator", "version": 2,
                "system_account": system.public_key()}),
        );
        let limits = |js: bool| {
            let storage = if js { -1 } else { 0 };
            serde_json::json!({"subs": -1, "data": -1, "payload": -1, "imports": -1,
                "exports": -1, "wildcards": true, "conn": -1, "leaf": -1,
                "mem_storage": storage, "disk_storage": storage, "streams": storage,
                "consumer": storage})
        };
        let sys_jwt = jwt(
            &operator,
            &system.public_key(),
            "SYS",
            serde_json::json!({"type": "account", "version": 2, "limits": limits(false)}),
        );
        let acc_jwt = jwt(
            &operator,
            &account.public_key(),
            "STATION",
            serde_json::json!({"type": "account", "version": 2, "limits": limits(true)}),
        );
        let user_jwt = jwt(
            &account,
            &user.public_key(),
            "rx-a",
            serde_json::json!({"type": "user", "version": 2, "pub": {}, "sub": {},
                "subs": -1, "data": -1, "payload": -1}),
        );
        let user_seed = user.seed().expect("user seed");
        let op_path = dir.join("operator.jwt");
        std::fs::write(&op_path, &op_jwt).expect("operator jwt");
        let creds = write_secret(
            dir,
            "rx-a.creds",
            &format!(
                "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
                 ************************* IMPORTANT *************************\n\
                 NKEY Seed printed below can be used to sign and prove identity.\n\n\
                 -----BEGIN USER NKEY SEED-----\n{user_seed}\n------END USER NKEY SEED------\n"
            ),
        );
        let server_config = format!(
            "operator: \"{op}\"\nsystem_account: {sys}\nresolver: MEMORY\n\
             resolver_preload: {{\n  {sys}: \"{sys_jwt}\"\n  {acc}: \"{acc_jwt}\"\n}}\n",
            op = op_path.display(),
            sys = system.public_key(),
            acc = account.public_key(),
        );
        Decentralised {
            server_config,
            creds,
            user_seed,
        }
    }
}
