use super::*;

const KEY_A: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
const KEY_B: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

fn client_text(extra_top: &str, links: &str) -> String {
    format!(
        "private_key = \"{KEY_A}\"\ngateway_public_key = \"{KEY_B}\"\n{extra_top}\n\
         [tun]\naddress = \"100.64.0.2/10\"\n\n{links}"
    )
}

const TWO_LINKS: &str = "[[link]]\ninterface = \"veth0\"\ngateway = \"198.18.0.1:5555\"\n\n\
                         [[link]]\nname = \"lte\"\ninterface = \"wwan0\"\ngateway = \"198.18.1.1:5555\"\nmtu = 1400\n";

fn client_err(text: &str) -> String {
    ClientConfig::parse(Path::new("client.toml"), text)
        .expect_err("config should be rejected")
        .to_string()
}

fn gateway_err(text: &str) -> String {
    GatewayConfig::parse(Path::new("gateway.toml"), text)
        .expect_err("config should be rejected")
        .to_string()
}

#[test]
fn valid_client_file_parses_with_defaults() {
    let cfg = ClientConfig::parse(Path::new("client.toml"), &client_text("", TWO_LINKS)).unwrap();
    assert_eq!(cfg.tun.name, "circus0");
    assert_eq!(cfg.policy, Policy::Balanced);
    assert_eq!(cfg.tun.address.to_string(), "100.64.0.2/10");
    assert_eq!(cfg.tun.mtu, None);
    assert_eq!(cfg.links.len(), 2);
    assert_eq!(cfg.links[0].name, "veth0", "name defaults to the interface");
    assert_eq!(cfg.links[0].mtu, DEFAULT_LINK_MTU);
    assert_eq!(cfg.links[1].name, "lte");
    assert_eq!(cfg.links[1].gateway, "198.18.1.1:5555".parse().unwrap());
    assert_eq!(cfg.links[1].mtu, 1400);
    assert_eq!(
        cfg.preshared_key.as_bytes(),
        &[0; 32],
        "no psk means all zero"
    );
    assert_eq!(cfg.gateway_public_key.to_string(), KEY_B);
    assert_eq!(
        cfg.observe,
        ObserveConfig {
            status_socket: Some("/run/circus-node/client.sock".into()),
            metrics_listen: None
        }
    );
}

#[test]
fn client_site_subnets_join_the_tunnel_address_as_its_own_prefixes() {
    let cfg = ClientConfig::parse(Path::new("client.toml"), &client_text("", TWO_LINKS)).unwrap();
    assert_eq!(
        cfg.tunnel_prefixes(),
        vec!["100.64.0.2/32".parse::<IpPrefix>().unwrap()],
        "the host, not the whole tunnel subnet"
    );
    let text = client_text("site_subnets = [\"10.20.0.0/16\", \"fd00::2\"]", TWO_LINKS);
    let cfg = ClientConfig::parse(Path::new("client.toml"), &text).unwrap();
    let prefixes: Vec<String> = cfg
        .tunnel_prefixes()
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(prefixes, ["100.64.0.2/32", "10.20.0.0/16", "fd00::2/128"]);
    let err = client_err(&client_text("site_subnets = [\"10.20.0.0/99\"]", TWO_LINKS));
    assert!(err.contains("key `site_subnets[0]`"), "{err}");
}

#[test]
fn routes_table_kill_switch_and_dns() {
    let cfg = ClientConfig::parse(Path::new("client.toml"), &client_text("", TWO_LINKS)).unwrap();
    assert_eq!(
        cfg.routing,
        RoutingConfig::default(),
        "no routes unless asked"
    );
    assert_eq!(cfg.routing.table, DEFAULT_ROUTE_TABLE);
    let text = client_text(
        "routes = [\"0.0.0.0/0\", \"::/0\"]\ntable = 100\nkill_switch = true\ndns = [\"100.64.0.1\", \"fd00::1\"]",
        TWO_LINKS,
    );
    let cfg = ClientConfig::parse(Path::new("client.toml"), &text).unwrap();
    let routes: Vec<String> = cfg.routing.routes.iter().map(|p| p.to_string()).collect();
    assert_eq!(routes, ["0.0.0.0/0", "::/0"]);
    assert_eq!(cfg.routing.table, 100);
    assert!(cfg.routing.kill_switch);
    assert_eq!(cfg.routing.dns.len(), 2);
    assert_eq!(
        cfg.tunnel_prefixes().len(),
        1,
        "routes are not accepted destinations"
    );
    for table in ["0", "254", "255", "253", "-1", "4294967296"] {
        let err = client_err(&client_text(
            &format!("routes = [\"0.0.0.0/0\"]\ntable = {table}"),
            TWO_LINKS,
        ));
        assert!(
            err.contains("key `table`") && err.contains("routing table"),
            "{err}"
        );
    }
    let err = client_err(&client_text("kill_switch = true", TWO_LINKS));
    assert!(
        err.contains("key `kill_switch`") && err.contains("routes"),
        "{err}"
    );
    let err = client_err(&client_text("dns = [\"resolver.example\"]", TWO_LINKS));
    assert!(err.contains("key `dns[0]`"), "{err}");
    let err = client_err(&client_text("routes = [\"0.0.0.0/33\"]", TWO_LINKS));
    assert!(err.contains("key `routes[0]`"), "{err}");
}

#[test]
fn gateway_nat_is_off_unless_set() {
    let text = gateway_text("");
    assert!(
        !GatewayConfig::parse(Path::new("g.toml"), &text)
            .unwrap()
            .nat
    );
    let text = text.replacen("listen", "nat = true\nlisten", 1);
    assert!(
        GatewayConfig::parse(Path::new("g.toml"), &text)
            .unwrap()
            .nat
    );
}

#[test]
fn top_level_gateway_is_the_default_for_links() {
    let text = client_text(
        "gateway = \"198.18.9.9:1\"",
        "[[link]]\ninterface = \"a\"\n[[link]]\ninterface = \"b\"\ngateway = \"198.18.1.1:2\"\n",
    );
    let cfg = ClientConfig::parse(Path::new("c.toml"), &text).unwrap();
    assert_eq!(cfg.links[0].gateway, "198.18.9.9:1".parse().unwrap());
    assert_eq!(cfg.links[1].gateway, "198.18.1.1:2".parse().unwrap());
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let text = client_text("", &format!("{TWO_LINKS}interfce = \"x\"\n"));
    let err = client_err(&text);
    assert!(err.starts_with("client.toml:"), "{err}");
    assert!(err.contains("link[1].interfce"), "{err}");
    assert!(err.contains("unknown field `interfce`"), "{err}");
    assert!(err.contains("interface"), "lists the expected keys: {err}");
    let line = text
        .lines()
        .position(|l| l.starts_with("interfce"))
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!(":{line}:")),
        "names line {line}: {err}"
    );
}

#[test]
fn bad_endpoint_names_key_expected_and_found() {
    let links = TWO_LINKS.replace("198.18.1.1:5555", "198.18.1.1");
    let err = client_err(&client_text("", &links));
    assert!(err.contains("key `link[1].gateway`"), "{err}");
    assert!(
        err.contains("expected an IP address or host name and port"),
        "{err}"
    );
    assert!(err.contains("found \"198.18.1.1\""), "{err}");
}

#[test]
fn wrong_type_names_key() {
    let links = TWO_LINKS.replace("mtu = 1400", "mtu = \"big\"");
    let err = client_err(&client_text("", &links));
    assert!(err.contains("link[1].mtu"), "{err}");
    assert!(
        err.contains("key `link[1].mtu`: invalid type: string \"big\""),
        "{err}"
    );
}

#[test]
fn mtu_out_of_range() {
    let links = TWO_LINKS.replace("mtu = 1400", "mtu = 100000");
    let err = client_err(&client_text("", &links));
    assert!(
        err.contains("key `link[1].mtu`: expected an MTU from 576 to 65535, found \"100000\""),
        "{err}"
    );
}

#[test]
fn bad_key_says_how_to_make_one() {
    let text = client_text("", TWO_LINKS).replace(KEY_B, "not-base64");
    let err = client_err(&text);
    assert!(err.contains("key `gateway_public_key`"), "{err}");
    assert!(err.contains("circus-node keygen"), "{err}");
    assert!(err.contains(":2:"), "line 2: {err}");
    let short = client_text("", TWO_LINKS).replace(KEY_B, "AAAA");
    assert!(client_err(&short).contains("32-byte key"));
}

#[test]
fn missing_private_key_and_both_forms() {
    let text = client_text("", TWO_LINKS).replace(&format!("private_key = \"{KEY_A}\"\n"), "");
    let err = client_err(&text);
    assert!(err.contains("key `private_key`"), "{err}");
    assert!(err.contains("found neither"), "{err}");
    let both = client_text("private_key_file = \"k\"", TWO_LINKS);
    assert!(
        client_err(&both).contains("only one of `private_key` and `private_key_file`, found both")
    );
}

/// A scratch directory with `client.key` holding `text` with `mode`.
fn key_dir(tag: &str, text: &str, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("cnd-config-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("client.key");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    dir
}

fn with_key_file() -> String {
    client_text("", TWO_LINKS).replace(
        &format!("private_key = \"{KEY_A}\""),
        "private_key_file = \"client.key\"",
    )
}

#[test]
fn key_file_is_read_relative_to_the_config() {
    let dir = key_dir("relative", &format!("{KEY_A}\n"), 0o600);
    let text = with_key_file();
    let cfg = ClientConfig::parse(&dir.join("client.toml"), &text).unwrap();
    assert_eq!(cfg.private_key.to_string(), KEY_A);
    let missing = text.replace("client.key", "nope.key");
    let err = ClientConfig::parse(&dir.join("client.toml"), &missing)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("key `private_key_file`: cannot read key file"),
        "{err}"
    );
    assert!(err.contains("nope.key"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn key_file_others_may_read_is_refused_in_one_line() {
    let dir = key_dir("exposed", &format!("{KEY_A}\n"), 0o644);
    let err = ClientConfig::parse(&dir.join("client.toml"), &with_key_file())
        .unwrap_err()
        .to_string();
    let file = dir.join("client.key");
    assert_eq!(
        err,
        format!(
            "{}:1:20: key `private_key_file`: key file {} may be read by group or others \
             (mode 644); run `chmod 600 {}`",
            dir.join("client.toml").display(),
            file.display(),
            file.display()
        )
    );
    let psk = client_text("preshared_key_file = \"client.key\"", TWO_LINKS);
    let err = ClientConfig::parse(&dir.join("client.toml"), &psk)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("key `preshared_key_file`") && err.contains("chmod 600"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A secret-looking value that does not parse as a key: what must never
/// be shown.
const NOT_A_KEY: &str = "c2VjcmV0LWJ1dC1ub3QtYS1rZXktcGFzdGVkLWhlcmU!";

#[test]
fn malformed_keys_are_described_not_echoed() {
    let inline = client_err(&client_text("", TWO_LINKS).replace(KEY_A, NOT_A_KEY));
    assert!(
        inline.contains("key `private_key`: expected a base64 32-byte key")
            && inline.contains("found 44 characters that are not base64"),
        "{inline}"
    );
    let short = client_err(&client_text("", TWO_LINKS).replace(KEY_A, "c2VjcmV0"));
    assert!(short.contains("found base64 of 6 bytes"), "{short}");

    let dir = key_dir("malformed", &format!("{NOT_A_KEY}\n"), 0o600);
    let err = ClientConfig::parse(&dir.join("client.toml"), &with_key_file())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("key `private_key_file`")
            && err.contains(&format!(
                "44 characters that are not base64 in {}",
                dir.join("client.key").display()
            )),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();

    for (name, text) in [
        ("inline", inline),
        ("short", short),
        ("file", err),
        (
            "psk",
            client_err(&client_text(
                &format!("preshared_key = \"{NOT_A_KEY}\""),
                TWO_LINKS,
            )),
        ),
        (
            "gateway key",
            client_err(&client_text("", TWO_LINKS).replace(KEY_B, NOT_A_KEY)),
        ),
        (
            "client key",
            gateway_err(&gateway_text(&format!(
                "[[client]]\nname = \"a\"\npublic_key = \"{NOT_A_KEY}\"\n\
                 tunnel_addresses = [\"100.64.0.2/32\"]\n"
            ))),
        ),
    ] {
        assert!(!text.contains(NOT_A_KEY), "{name}: {text}");
        assert!(!text.contains("c2VjcmV0"), "{name}: {text}");
    }
}

proptest::proptest! {
    /// Whatever a key setting holds, quoted or not, well-formed TOML or
    /// not, no error shows it.
    #[test]
    fn no_error_shows_a_key_value(value in "[A-Za-z0-9+/=]{12,60}") {
        for template in [
            format!("private_key = \"{value}\""),
            format!("private_key = {value}"),
            format!("private_key = '{value}"),
            format!("private_key = \"{value}\" trailing"),
            format!("preshared_key = \"{value}\"\nprivate_key = \"{KEY_A}\""),
        ] {
            let text = client_text("", TWO_LINKS)
                .replace(&format!("private_key = \"{KEY_A}\""), &template);
            if let Err(e) = ClientConfig::parse(Path::new("client.toml"), &text) {
                let shown = e.to_string();
                proptest::prop_assert!(!shown.contains(&value), "{} shows {}", shown, value);
            }
        }
    }
}

#[test]
fn missing_section_and_empty_links() {
    let err = client_err(&format!(
        "private_key = \"{KEY_A}\"\ngateway_public_key = \"{KEY_B}\"\n"
    ));
    assert!(err.contains("missing field `tun`"), "{err}");
    let err = client_err(&client_text("link = []", ""));
    assert!(
        err.contains("key `link`: expected at least one [[link]] table"),
        "{err}"
    );
    let err = client_err(&client_text("", ""));
    assert!(err.contains("missing field `link`"), "{err}");
}

#[test]
fn links_need_a_gateway_and_distinct_interfaces() {
    let err = client_err(&client_text("", "[[link]]\ninterface = \"a\"\n"));
    assert!(err.contains("key `link[0].gateway`"), "{err}");
    let dup = TWO_LINKS.replace("wwan0", "veth0");
    let err = client_err(&client_text("", &dup));
    assert!(
        err.contains("key `link[1].interface`: expected an interface not already used by link[0]"),
        "{err}"
    );
    let long = TWO_LINKS.replace("wwan0", "an-interface-name-too-long");
    assert!(client_err(&client_text("", &long)).contains("1 to 15 bytes"));
}

#[test]
fn too_many_links() {
    let links: String = (0..=MAX_LINKS)
        .map(|i| format!("[[link]]\ninterface = \"l{i}\"\ngateway = \"198.18.0.1:1\"\n"))
        .collect();
    let err = client_err(&client_text("", &links));
    assert!(err.contains("at most 16"), "{err}");
}

#[test]
fn policy_names() {
    let cfg = ClientConfig::parse(
        Path::new("c"),
        &client_text("policy = \"adaptive\"", TWO_LINKS),
    )
    .unwrap();
    assert_eq!(cfg.policy, Policy::Adaptive);
    let err = client_err(&client_text("policy = \"fastest\"", TWO_LINKS));
    assert!(
        err.contains("key `policy`: expected one of \"balanced\""),
        "{err}"
    );
}

#[test]
fn syntax_error_has_a_line() {
    let err = client_err("private_key = \n");
    assert!(err.starts_with("client.toml:1:"), "{err}");
    assert!(err.contains("not valid TOML"), "{err}");
}

#[test]
fn unreadable_file_names_it() {
    let err = ClientConfig::load(Path::new("/nonexistent/cnd.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("/nonexistent/cnd.toml: cannot read"),
        "{err}"
    );
}

fn gateway_text(clients: &str) -> String {
    format!(
        "private_key = \"{KEY_A}\"\nlisten = \"0.0.0.0:5555\"\n\
         [tun]\naddress = \"100.64.0.1/10\"\n[observe]\nmetrics_listen = \"127.0.0.1:9317\"\n{clients}"
    )
}

#[test]
fn valid_gateway_file() {
    let cfg = GatewayConfig::parse(
        Path::new("gateway.toml"),
        &gateway_text(&format!(
            "[[client]]\nname = \"home\"\npublic_key = \"{KEY_B}\"\n\
             tunnel_addresses = [\"100.64.0.2/32\", \"10.1.0.0/16\"]\n"
        )),
    )
    .unwrap();
    assert_eq!(cfg.tun.name, "circus-gw");
    assert_eq!(cfg.listen, "0.0.0.0:5555".parse().unwrap());
    assert_eq!(
        cfg.observe.metrics_listen,
        Some("127.0.0.1:9317".parse().unwrap())
    );
    assert_eq!(cfg.clients.len(), 1);
    assert_eq!(
        cfg.clients[0].tunnel_addresses[1].to_string(),
        "10.1.0.0/16"
    );
}

#[test]
fn gateway_client_errors() {
    let bad_addr = gateway_text(&format!(
        "[[client]]\nname = \"home\"\npublic_key = \"{KEY_B}\"\ntunnel_addresses = [\"100.64.0.300\"]\n"
    ));
    let err = gateway_err(&bad_addr);
    assert!(
        err.contains("key `client[0].tunnel_addresses[0]`: expected an IP address or prefix"),
        "{err}"
    );
    let taken = gateway_text(&format!(
        "[[client]]\nname = \"a\"\npublic_key = \"{KEY_A}\"\ntunnel_addresses = [\"100.64.0.2/32\"]\n\
         [[client]]\nname = \"b\"\npublic_key = \"{KEY_B}\"\ntunnel_addresses = [\"fd00::3\", \"100.64.0.2\"]\n"
    ));
    let err = gateway_err(&taken);
    assert!(
        err.contains("key `client[1].tunnel_addresses[1]`: expected an address not already routed to client[0]"),
        "{err}"
    );
    let dup = gateway_text(&format!(
        "[[client]]\nname = \"a\"\npublic_key = \"{KEY_B}\"\ntunnel_addresses = [\"100.64.0.2/32\"]\n\
         [[client]]\nname = \"b\"\npublic_key = \"{KEY_B}\"\ntunnel_addresses = [\"100.64.0.3/32\"]\n"
    ));
    let err = gateway_err(&dup);
    assert!(
        err.contains("key `client[1].public_key`: expected a key not already given to client[0]"),
        "{err}"
    );
    let no_addr = gateway_text(&format!(
        "[[client]]\nname = \"a\"\npublic_key = \"{KEY_B}\"\ntunnel_addresses = []\n"
    ));
    assert!(gateway_err(&no_addr).contains("client[0].tunnel_addresses"));
    let bad_listen = gateway_text("").replace("0.0.0.0:5555", "any");
    assert!(gateway_err(&bad_listen).contains("key `listen`: expected an IP address and port"));
}

#[test]
fn line_column_counts_from_one() {
    assert_eq!(line_column("ab\ncd", 0), (1, 1));
    assert_eq!(line_column("ab\ncd", 4), (2, 2));
    assert_eq!(line_column("ab", 99), (1, 3));
}

/// The commented examples in deploy/ stay valid (with the key files
/// replaced by inline keys, since the files do not exist here).
#[test]
fn deploy_examples_parse() {
    let inline = |text: &str, file: &str| {
        text.replace(
            &format!("private_key_file = \"{file}\""),
            &format!("private_key = \"{KEY_A}\""),
        )
    };
    let client = inline(
        include_str!("../../../deploy/client.toml"),
        "/etc/circus/client.key",
    );
    let cfg = ClientConfig::parse(Path::new("deploy/client.toml"), &client).unwrap();
    assert_eq!(cfg.links.len(), 3);
    assert_eq!(cfg.links[1].mtu, 1428);
    assert_eq!(cfg.links[2].gateway, "203.0.113.10:51820".parse().unwrap());
    let gateway = inline(
        include_str!("../../../deploy/gateway.toml"),
        "/etc/circus/gateway.key",
    );
    let cfg = GatewayConfig::parse(Path::new("deploy/gateway.toml"), &gateway).unwrap();
    assert_eq!(cfg.clients.len(), 2);
    assert_eq!(cfg.clients[1].tunnel_addresses.len(), 2);
    assert!(!cfg.nat);

    // The commented-out routing examples are valid once uncommented.
    let uncomment = |text: &str, keys: &[&str]| {
        keys.iter().fold(text.to_owned(), |t, k| {
            t.replace(&format!("\n#{k} ="), &format!("\n{k} ="))
        })
    };
    let keys = ["site_subnets", "routes", "table", "kill_switch", "dns"];
    let cfg = ClientConfig::parse(Path::new("c.toml"), &uncomment(&client, &keys)).unwrap();
    assert_eq!(cfg.routing.routes.len(), 2);
    assert!(cfg.routing.kill_switch);
    assert_eq!(cfg.routing.dns.len(), 1);
    let cfg = GatewayConfig::parse(Path::new("g.toml"), &uncomment(&gateway, &["nat"])).unwrap();
    assert!(cfg.nat);
}

#[test]
fn tun_address_takes_a_list_of_one_per_family() {
    let dual = client_text("", TWO_LINKS).replace(
        "address = \"100.64.0.2/10\"",
        "address = [\"100.64.0.2/10\", \"fd00:64::2/64\"]",
    );
    let cfg = ClientConfig::parse(Path::new("c.toml"), &dual).unwrap();
    assert_eq!(cfg.tun.address.to_string(), "100.64.0.2/10, fd00:64::2/64");
    let prefixes: Vec<String> = cfg
        .tunnel_prefixes()
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(prefixes, ["100.64.0.2/32", "fd00:64::2/128"]);

    let v6_only = client_text("", TWO_LINKS).replace("100.64.0.2/10", "fd00:64::2/64");
    let cfg = ClientConfig::parse(Path::new("c.toml"), &v6_only).unwrap();
    assert_eq!(cfg.tun.address.v4, None);

    let two_v4 = client_text("", TWO_LINKS).replace(
        "address = \"100.64.0.2/10\"",
        "address = [\"100.64.0.2/10\",\n  \"100.64.0.3/10\"]",
    );
    let err = client_err(&two_v4);
    let line = two_v4
        .lines()
        .position(|l| l.contains("100.64.0.3"))
        .unwrap()
        + 1;
    assert!(
        err.starts_with(&format!("client.toml:{line}:")),
        "names the entry's line {line}: {err}"
    );
    assert!(
        err.contains(
            "key `tun.address[1]`: expected at most one IPv4 and one IPv6 address, found \"100.64.0.3/10\""
        ),
        "{err}"
    );
    let bad = client_text("", TWO_LINKS).replace("100.64.0.2/10", "fd00::2");
    let err = client_err(&bad);
    assert!(
        err.contains("key `tun.address`: expected an IPv4 or IPv6 address with prefix length"),
        "{err}"
    );
    let empty = client_text("", TWO_LINKS).replace("\"100.64.0.2/10\"", "[]");
    assert!(client_err(&empty).contains("found an empty list"));
    let number = client_text("", TWO_LINKS).replace("\"100.64.0.2/10\"", "7");
    let err = client_err(&number);
    assert!(
        err.contains("key `tun.address`: invalid type: integer `7`, expected a string or a list"),
        "{err}"
    );
}

#[test]
fn gateway_routes_v6_prefixes_and_listens_on_both_families() {
    let text = gateway_text(&format!(
        "[[client]]\nname = \"home\"\npublic_key = \"{KEY_B}\"\n\
         tunnel_addresses = [\"100.64.0.2/32\", \"fd00:64::2/128\"]\n"
    ))
    .replace("0.0.0.0:5555", "[::]:5555")
    .replace(
        "\"100.64.0.1/10\"",
        "[\"100.64.0.1/10\", \"fd00:64::1/64\"]",
    );
    let cfg = GatewayConfig::parse(Path::new("gateway.toml"), &text).unwrap();
    assert_eq!(cfg.listen, "[::]:5555".parse().unwrap());
    assert!(cfg.tun.address.v6.is_some());
    assert_eq!(
        cfg.clients[0].tunnel_addresses[1].to_string(),
        "fd00:64::2/128"
    );
}

#[test]
fn gateway_may_be_a_host_name_resolved_at_load() {
    let text = client_text(
        "gateway = \"localhost:51820\"",
        "[[link]]\ninterface = \"a\"\n[[link]]\ninterface = \"b\"\ngateway = \"198.18.1.1:2\"\n",
    );
    let cfg = ClientConfig::parse(Path::new("c.toml"), &text).unwrap();
    assert!(cfg.links[0].gateway.ip().is_loopback());
    assert_eq!(cfg.links[0].gateway.port(), 51820);
    assert_eq!(cfg.links[0].gateway_host.as_deref(), Some("localhost"));
    assert_eq!(cfg.links[1].gateway_host, None);

    let unknown = client_text(
        "",
        "[[link]]\ninterface = \"a\"\ngateway = \"circus-test.invalid:51820\"\n",
    );
    let err = client_err(&unknown);
    assert!(
        err.contains("key `link[0].gateway`: cannot resolve host name \"circus-test.invalid\""),
        "{err}"
    );
    let line = unknown
        .lines()
        .position(|l| l.contains(".invalid"))
        .unwrap()
        + 1;
    assert!(err.contains(&format!(":{line}:")), "line {line}: {err}");
}
