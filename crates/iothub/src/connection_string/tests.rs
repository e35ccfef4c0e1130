use super::*;
use crate::test_rng::XorShift;

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn err(s: &str) -> String {
    ConnectionString::parse(s).unwrap_err().to_string()
}

#[test]
fn service_string() {
    let s = format!(
        "HostName=myhub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey={KEY}"
    );
    let ConnectionString::Service(c) = ConnectionString::parse(&s).unwrap() else {
        panic!("not a service string")
    };
    assert_eq!(c.host_name, "myhub.azure-devices.net");
    assert_eq!(c.policy_name, "iothubowner");
    assert_eq!(c.key, KEY);
    assert_eq!(c.hub_name(), "myhub");
    assert_eq!(c.to_string(), s);
    assert_eq!(
        c.masked(),
        "HostName=myhub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=****"
    );
    assert!(!format!("{c:?}").contains(KEY));
    // Trailing ';' and order do not matter.
    let reordered = format!(
        "SharedAccessKey={KEY};SharedAccessKeyName=iothubowner;HostName=myhub.azure-devices.net;"
    );
    assert_eq!(ServiceConnectionString::parse(&reordered).unwrap(), c);
}

#[test]
fn device_strings_of_each_auth() {
    let s = format!("HostName=h.azure-devices.net;DeviceId=dev1;SharedAccessKey={KEY}");
    let c = DeviceConnectionString::parse(&s).unwrap();
    assert_eq!(c.device_id, "dev1");
    assert_eq!(c.module_id, None);
    assert_eq!(c.auth, DeviceAuth::SharedAccessKey(KEY.into()));
    assert_eq!(c.to_string(), s);
    assert_eq!(
        c.masked(),
        "HostName=h.azure-devices.net;DeviceId=dev1;SharedAccessKey=****"
    );

    let s = format!(
        "HostName=h.azure-devices.net;DeviceId=dev1;ModuleId=m1;SharedAccessKey={KEY};GatewayHostName=edge.local"
    );
    let c = DeviceConnectionString::parse(&s).unwrap();
    assert_eq!(c.module_id.as_deref(), Some("m1"));
    assert_eq!(c.gateway_host_name.as_deref(), Some("edge.local"));
    assert_eq!(c.to_string(), s);

    let c = DeviceConnectionString::parse("HostName=h;DeviceId=d;x509=true").unwrap();
    assert_eq!(c.auth, DeviceAuth::X509);
    assert_eq!(c.to_string(), "HostName=h;DeviceId=d;x509=true");

    // SAS values contain '=' and '&': split at the first '=' only.
    let token = "SharedAccessSignature sr=h%2Fdevices%2Fd&sig=abc%3D&se=1700000000";
    let s = format!("HostName=h;DeviceId=d;SharedAccessSignature={token}");
    let c = DeviceConnectionString::parse(&s).unwrap();
    assert_eq!(c.auth, DeviceAuth::SharedAccessSignature(token.into()));
    assert_eq!(c.to_string(), s);
    assert_eq!(
        c.masked(),
        "HostName=h;DeviceId=d;SharedAccessSignature=****"
    );
    assert!(!format!("{:?}", ConnectionString::Device(c)).contains("sig="));
}

#[test]
fn event_hub_string() {
    let s = format!(
        "Endpoint=sb://iothub-ns-myhub-1-abc.servicebus.windows.net/;SharedAccessKeyName=iothubowner;SharedAccessKey={KEY};EntityPath=myhub"
    );
    let ConnectionString::EventHub(c) = ConnectionString::parse(&s).unwrap() else {
        panic!("not an event hubs string")
    };
    assert_eq!(
        c.endpoint,
        "sb://iothub-ns-myhub-1-abc.servicebus.windows.net/"
    );
    assert_eq!(c.host, "iothub-ns-myhub-1-abc.servicebus.windows.net");
    assert_eq!(c.entity_path, "myhub");
    assert_eq!(c.to_string(), s);
    assert!(c.masked().contains("SharedAccessKey=****;"));

    // Keys case-insensitive; HostName stands in for Endpoint.
    let s =
        format!("hostname=localhost:5671;sharedaccesskeyname=p;SHAREDACCESSKEY={KEY};entitypath=e");
    let c = EventHubConnectionString::parse(&s).unwrap();
    assert_eq!(c.endpoint, "sb://localhost:5671/");
    assert_eq!(c.host, "localhost:5671");
    assert_eq!(EventHubConnectionString::parse(&c.to_string()).unwrap(), c);
}

#[test]
fn errors_name_the_field() {
    assert_eq!(err(""), "the connection string is empty");
    assert_eq!(err(" ; ;"), "the connection string is empty");
    assert_eq!(
        err("HostName=h;DeviceId"),
        "the connection string part \"DeviceId\" has no '=' (expected Key=Value)"
    );
    assert_eq!(
        err(&format!(
            "HostName=h;DeviceId=d;SharedAccessKey={KEY};Foo=1"
        )),
        "the connection string has an unknown key Foo"
    );
    // Hub/device keys are case-sensitive.
    assert_eq!(
        err(&format!("HostName=h;DeviceId=d;sharedaccesskey={KEY}")),
        "the connection string has an unknown key sharedaccesskey"
    );
    assert_eq!(
        err(&format!("SharedAccessKeyName=p;SharedAccessKey={KEY}")),
        "the connection string has no HostName"
    );
    assert_eq!(
        err("HostName=h;SharedAccessKeyName=p"),
        "the connection string has no SharedAccessKey"
    );
    assert_eq!(
        err(&format!(
            "HostName=h;SharedAccessKeyName=;SharedAccessKey={KEY}"
        )),
        "the connection string has an empty value for SharedAccessKeyName"
    );
    assert_eq!(
        err(&format!(
            "HostName=h;DeviceId=d;DeviceId=e;SharedAccessKey={KEY}"
        )),
        "the connection string has DeviceId more than once"
    );
    assert_eq!(
        err(&format!(
            "HostName=h;DeviceId=d;SharedAccessKey={KEY};x509=true"
        )),
        "the connection string mixes authentication schemes (SharedAccessKey and x509); keep one"
    );
    assert_eq!(
        err(&format!(
            "HostName=h;DeviceId=d;SharedAccessKey={KEY};SharedAccessSignature=x"
        )),
        "the connection string mixes authentication schemes (SharedAccessKey and SharedAccessSignature); keep one"
    );
    assert_eq!(
        err("HostName=h;DeviceId=d;SharedAccessKey=not base64!"),
        "the connection string's SharedAccessKey is not valid base64"
    );
    assert_eq!(
        err("HostName=h;DeviceId=d"),
        "the device connection string has no SharedAccessKey, SharedAccessSignature or x509=true"
    );
    assert_eq!(
        err("HostName=h;DeviceId=d;x509=yes"),
        "the connection string's x509 must be true or false, not \"yes\""
    );
    assert_eq!(
        err("HostName=h;SharedAccessKey=AAAA"),
        "the connection string is neither a hub (SharedAccessKeyName), device (DeviceId) nor event hubs (Endpoint) string"
    );
    assert_eq!(
        err(&format!(
            "Endpoint=sb://x/;HostName=x;SharedAccessKeyName=p;SharedAccessKey={KEY};EntityPath=e"
        )),
        "the connection string has Endpoint more than once"
    );
    assert_eq!(
        err(&format!(
            "Endpoint=sb://x/;SharedAccessKeyName=p;SharedAccessKey={KEY}"
        )),
        "the connection string has no EntityPath"
    );
    assert_eq!(
        err(&format!(
            "Endpoint=sb://x/;SharedAccessKeyName=p;SharedAccessKey={KEY};EntityPath=e;UseDevelopmentEmulator=true"
        )),
        "the connection string has an unknown key UseDevelopmentEmulator"
    );
    assert_eq!(
        err(&format!(
            "Endpoint=sb:///;SharedAccessKeyName=p;SharedAccessKey={KEY};EntityPath=e"
        )),
        "the connection string's Endpoint \"sb:///\" has no host name"
    );
}

#[test]
fn smoke_random_inputs_never_panic_and_round_trip() {
    let seeds = [
        format!("HostName=h.azure-devices.net;SharedAccessKeyName=p;SharedAccessKey={KEY}"),
        format!("HostName=h;DeviceId=d;ModuleId=m;SharedAccessKey={KEY};GatewayHostName=g"),
        "HostName=h;DeviceId=d;x509=true".to_owned(),
        "HostName=h;DeviceId=d;SharedAccessSignature=SharedAccessSignature sr=a&sig=b&se=1"
            .to_owned(),
        format!("Endpoint=sb://n/;SharedAccessKeyName=p;SharedAccessKey={KEY};EntityPath=e"),
    ];
    let alphabet: Vec<char> = ";=/: AaZz09+\u{e9}xX".chars().collect();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut parsed = 0;
    for _ in 0..4000 {
        let s = rng.mutate(&seeds, &alphabet, 4);
        if let Ok(c) = ConnectionString::parse(&s) {
            parsed += 1;
            assert_eq!(
                ConnectionString::parse(&c.to_string()).as_ref(),
                Ok(&c),
                "{s}"
            );
            let _ = c.masked();
        }
    }
    assert!(parsed > 100, "mutations too destructive: {parsed}");
}
