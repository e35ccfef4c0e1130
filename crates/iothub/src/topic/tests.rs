use super::*;
use crate::test_rng::XorShift;

fn bag(s: &str) -> PropertyBag {
    PropertyBag::parse(s).unwrap()
}

#[test]
fn device_publish_round_trips() {
    let cases = [
        (
            "devices/dev1/messages/events/",
            DevicePublish::Telemetry {
                device_id: "dev1".into(),
                module_id: None,
                properties: PropertyBag::default(),
            },
        ),
        (
            "devices/dev1/messages/events/%24.ct=application%2Fjson&%24.ce=utf-8&temp=hot",
            DevicePublish::Telemetry {
                device_id: "dev1".into(),
                module_id: None,
                properties: bag("$.ct=application/json&$.ce=utf-8&temp=hot"),
            },
        ),
        (
            "devices/d:1/modules/m.1/messages/events/%24.on=out1",
            DevicePublish::Telemetry {
                device_id: "d:1".into(),
                module_id: Some("m.1".into()),
                properties: bag("$.on=out1"),
            },
        ),
        (
            "$iothub/twin/GET/?$rid=0f8b2c3e-1111-4222-8333-944445555666",
            DevicePublish::TwinGet {
                rid: "0f8b2c3e-1111-4222-8333-944445555666".into(),
            },
        ),
        (
            "$iothub/twin/PATCH/properties/reported/?$rid=42",
            DevicePublish::TwinPatchReported { rid: "42".into() },
        ),
        (
            "$iothub/methods/res/200/?$rid=1",
            DevicePublish::MethodResponse {
                status: 200,
                rid: "1".into(),
            },
        ),
        (
            "$iothub/methods/res/-1/?$rid=ab",
            DevicePublish::MethodResponse {
                status: -1,
                rid: "ab".into(),
            },
        ),
    ];
    for (topic, value) in cases {
        assert_eq!(parse_device_publish(topic).as_ref(), Ok(&value), "{topic}");
        assert_eq!(value.to_topic(), topic);
    }
}

#[test]
fn device_publish_tolerates_sdk_variants() {
    // No slash after events, Node's trailing '/', raw "$." keys from the docs.
    let plain = parse_device_publish("devices/d/messages/events").unwrap();
    assert_eq!(plain.to_topic(), "devices/d/messages/events/");
    let node = parse_device_publish("devices/d/modules/m/messages/events/%24.on=o/").unwrap();
    let DevicePublish::Telemetry { properties, .. } = &node else {
        panic!("not telemetry")
    };
    assert_eq!(properties.system("on"), Some("o"));
    let raw =
        parse_device_publish("devices/d/messages/events/$.ct=application/json&$.ce=utf-8").unwrap();
    assert_eq!(
        raw.to_topic(),
        "devices/d/messages/events/%24.ct=application%2Fjson&%24.ce=utf-8"
    );
    // Unknown extra parameters are ignored; the rid is kept raw.
    assert_eq!(
        parse_device_publish("$iothub/twin/GET/?$rid=a%20b&x=1"),
        Ok(DevicePublish::TwinGet {
            rid: "a%20b".into()
        })
    );
}

#[test]
fn device_publish_errors() {
    let e = |t: &str| parse_device_publish(t).unwrap_err().to_string();
    assert_eq!(
        e("devices/d/messages/eventsX"),
        "the topic \"devices/d/messages/eventsX\" is not an IoT Hub topic"
    );
    assert_eq!(
        e("devices//messages/events/"),
        "the topic \"devices//messages/events/\" has an empty device, module or method name"
    );
    assert_eq!(
        e("$iothub/twin/GET/?$rid="),
        "the topic \"$iothub/twin/GET/?$rid=\" has no $rid request id"
    );
    assert_eq!(
        e("$iothub/twin/GET/"),
        "the topic \"$iothub/twin/GET/\" is not an IoT Hub topic"
    );
    assert_eq!(
        e("$iothub/twin/GET/?foo=1"),
        "the topic \"$iothub/twin/GET/?foo=1\" has no $rid request id"
    );
    assert_eq!(
        e("$iothub/methods/res/OK/?$rid=1"),
        "the topic \"$iothub/methods/res/OK/?$rid=1\" has a status that is not a number"
    );
    assert_eq!(
        e("$iothub/methods/res/+200/?$rid=1"),
        "the topic \"$iothub/methods/res/+200/?$rid=1\" has a status that is not a number"
    );
    assert_eq!(
        e("devices/d/messages/devicebound/"),
        "the topic \"devices/d/messages/devicebound/\" is not an IoT Hub topic"
    );
    assert_eq!(
        e("devices/d/messages/events/=x"),
        "the topic has a bad property bag: the property bag has an entry with an empty name at byte 0"
    );
}

#[test]
fn hub_publish_round_trips() {
    let cases = [
        (
            "devices/nonsdkdevice/messages/devicebound/%24.mid=f618dedc&%24.to=%2Fdevices%2Fnonsdkdevice%2Fmessages%2Fdevicebound&key1=value1",
            HubPublish::C2d {
                device_id: "nonsdkdevice".into(),
                module_id: None,
                properties: bag(
                    "$.mid=f618dedc&$.to=/devices/nonsdkdevice/messages/devicebound&key1=value1",
                ),
            },
        ),
        (
            "devices/d/messages/devicebound/",
            HubPublish::C2d {
                device_id: "d".into(),
                module_id: None,
                properties: PropertyBag::default(),
            },
        ),
        (
            "$iothub/twin/res/200/?$rid=1",
            HubPublish::TwinResponse {
                status: 200,
                rid: "1".into(),
                version: None,
            },
        ),
        (
            "$iothub/twin/res/204/?$rid=1&$version=6",
            HubPublish::TwinResponse {
                status: 204,
                rid: "1".into(),
                version: Some(6),
            },
        ),
        (
            "$iothub/twin/PATCH/properties/desired/?$version=8",
            HubPublish::DesiredPatch { version: 8 },
        ),
        (
            "$iothub/methods/POST/reboot/?$rid=ff",
            HubPublish::MethodRequest {
                method_name: "reboot".into(),
                rid: "ff".into(),
            },
        ),
    ];
    for (topic, value) in cases {
        assert_eq!(parse_hub_publish(topic).as_ref(), Ok(&value), "{topic}");
        assert_eq!(value.to_topic(), topic);
    }
    // C SDK test vector, with bare keys.
    let c = parse_hub_publish("devices/myDeviceId/messages/devicebound/iothub-ack=Full&propName=PropValue&DeviceInfo=smokeTest&%24.to=%2Fdevices%2FmyDeviceId%2Fmessages%2FdeviceBound&%24.cid&%24.uid").unwrap();
    let HubPublish::C2d { properties, .. } = &c else {
        panic!("not c2d")
    };
    assert_eq!(properties.get("iothub-ack"), Some("Full"));
    // $version param order does not matter.
    assert_eq!(
        parse_hub_publish("$iothub/twin/res/204/?$version=3&$rid=x"),
        Ok(HubPublish::TwinResponse {
            status: 204,
            rid: "x".into(),
            version: Some(3)
        })
    );
    // Reserved module id is not put on the wire.
    let m = HubPublish::C2d {
        device_id: "d".into(),
        module_id: Some("m".into()),
        properties: PropertyBag::default(),
    };
    assert_eq!(m.to_topic(), "devices/d/messages/devicebound/");
}

#[test]
fn hub_publish_errors() {
    let e = |t: &str| parse_hub_publish(t).unwrap_err();
    assert_eq!(
        e("$iothub/twin/PATCH/properties/desired/"),
        TopicError::Unknown("$iothub/twin/PATCH/properties/desired/".into())
    );
    assert_eq!(
        e("$iothub/twin/PATCH/properties/desired/?$rid=1"),
        TopicError::BadVersion("$iothub/twin/PATCH/properties/desired/?$rid=1".into())
    );
    assert_eq!(
        e("$iothub/twin/res/204/?$rid=1&$version=x"),
        TopicError::BadVersion("$iothub/twin/res/204/?$rid=1&$version=x".into())
    );
    assert_eq!(
        e("$iothub/twin/res/99999/?$rid=1"),
        TopicError::BadStatus("$iothub/twin/res/99999/?$rid=1".into())
    );
    assert_eq!(
        e("$iothub/methods/POST//?$rid=1"),
        TopicError::EmptyName("$iothub/methods/POST//?$rid=1".into())
    );
    assert_eq!(
        e("devices/d/modules/m/messages/devicebound/"),
        TopicError::Unknown("devices/d/modules/m/messages/devicebound/".into())
    );
    assert_eq!(
        TopicError::BadVersion("t".into()).to_string(),
        "the topic \"t\" has a $version that is not a number"
    );
}

#[test]
fn module_input_round_trip() {
    let t = "devices/d/modules/m/inputs/input1/%24.on=out&k=v";
    let m = ModuleInput::parse(t).unwrap();
    assert_eq!(m.input_name, "input1");
    assert_eq!(m.properties.get("k"), Some("v"));
    assert_eq!(m.to_topic(), t);
    assert!(ModuleInput::parse("devices/d/inputs/x/").is_err());
}

#[test]
fn subscriptions_round_trip() {
    let cases = [
        (
            "devices/d1/messages/devicebound/#",
            Subscription::C2d {
                device_id: "d1".into(),
            },
        ),
        (
            "devices/d1/modules/m1/inputs/#",
            Subscription::ModuleInputs {
                device_id: "d1".into(),
                module_id: "m1".into(),
            },
        ),
        ("$iothub/twin/res/#", Subscription::TwinResponses),
        (
            "$iothub/twin/PATCH/properties/desired/#",
            Subscription::DesiredPatches,
        ),
        ("$iothub/methods/POST/#", Subscription::Methods),
    ];
    for (filter, value) in cases {
        assert_eq!(parse_subscription(filter).as_ref(), Ok(&value), "{filter}");
        assert_eq!(value.to_filter(), filter);
    }
    // C SDK module form.
    assert_eq!(
        parse_subscription("devices/d1/modules/m1/#"),
        Ok(Subscription::ModuleInputs {
            device_id: "d1".into(),
            module_id: "m1".into()
        })
    );
    for bad in [
        "#",
        "$iothub/twin/res/+",
        "devices/d1/messages/devicebound/+",
        "devices/d1/#",
        "$iothub/methods/POST/reboot/#",
    ] {
        assert_eq!(
            parse_subscription(bad),
            Err(TopicError::Unknown(bad.into())),
            "{bad}"
        );
    }
}

#[test]
fn usernames_of_each_sdk() {
    let py = MqttUsername::parse("h.azure-devices.net/dev1/?api-version=2019-10-01&DeviceClientType=azure-iot-device%2F2.14.0%20%28python%29").unwrap();
    assert_eq!(py.host, "h.azure-devices.net");
    assert_eq!(py.device_id, "dev1");
    assert_eq!(py.module_id, None);
    assert_eq!(py.api_version.as_deref(), Some("2019-10-01"));
    assert_eq!(
        py.client_type.as_deref(),
        Some("azure-iot-device/2.14.0 (python)")
    );
    assert_eq!(
        py.format(),
        "h.azure-devices.net/dev1/?api-version=2019-10-01&DeviceClientType=azure-iot-device%2F2.14.0%20%28python%29"
    );

    // Node: model-id before DeviceClientType and not encoded; module form.
    let node = MqttUsername::parse("h/d/m/?api-version=2021-04-12&model-id=dtmi:com:example:Thermostat;1&DeviceClientType=azure-iot-device%2F1.18").unwrap();
    assert_eq!(node.module_id.as_deref(), Some("m"));
    assert_eq!(
        node.model_id.as_deref(),
        Some("dtmi:com:example:Thermostat;1")
    );
    assert_eq!(
        node.format(),
        "h/d/m/?api-version=2021-04-12&DeviceClientType=azure-iot-device%2F1.18&model-id=dtmi%3Acom%3Aexample%3AThermostat%3B1"
    );
    assert_eq!(MqttUsername::parse(&node.format()), Ok(node));

    // Old C SDK: no '?'.
    let old = MqttUsername::parse("h/d/api-version=2016-11-14&DeviceClientType=iothubclient%2F1.1")
        .unwrap();
    assert_eq!(old.module_id, None);
    assert_eq!(old.api_version.as_deref(), Some("2016-11-14"));
    let old_mod = MqttUsername::parse("h/d/m/api-version=2016-11-14").unwrap();
    assert_eq!(old_mod.module_id.as_deref(), Some("m"));

    // No api-version at all.
    for s in ["h/d", "h/d/", "h/d/?"] {
        let u = MqttUsername::parse(s).unwrap();
        assert_eq!((u.module_id, u.api_version), (None, None), "{s}");
    }
    assert_eq!(MqttUsername::parse("h/d/m").unwrap().format(), "h/d/m/");

    for bad in ["", "h", "/d/", "h//", "h/d//", "h/d/m/x"] {
        assert_eq!(
            MqttUsername::parse(bad),
            Err(TopicError::BadUsername(bad.into())),
            "{bad}"
        );
    }
}

#[test]
fn smoke_random_topics_never_panic_and_round_trip() {
    let seeds = [
        "devices/d/messages/events/%24.mid=1&k=v",
        "devices/d/modules/m/messages/events/",
        "devices/d/messages/devicebound/%24.to=x&k",
        "devices/d/modules/m/inputs/#",
        "devices/d/modules/m/inputs/i/k=v",
        "$iothub/twin/GET/?$rid=1",
        "$iothub/twin/PATCH/properties/reported/?$rid=1",
        "$iothub/twin/res/204/?$rid=1&$version=2",
        "$iothub/twin/PATCH/properties/desired/?$version=2",
        "$iothub/methods/POST/m/?$rid=1",
        "$iothub/methods/res/200/?$rid=1",
        "$iothub/twin/res/#",
        "h/d/m/?api-version=1&DeviceClientType=a%2Fb&model-id=dtmi:x;1",
        "h/d/api-version=1",
    ];
    let alphabet: Vec<char> = "/?&=$#+%2F-09ad.\u{e9}".chars().collect();
    let mut rng = XorShift(0x0123_4567_89ab_cdef);
    let mut parsed = 0;
    for _ in 0..6000 {
        let s = rng.mutate(&seeds, &alphabet, 3);
        if let Ok(v) = parse_device_publish(&s) {
            parsed += 1;
            assert_eq!(parse_device_publish(&v.to_topic()).as_ref(), Ok(&v), "{s}");
        }
        if let Ok(v) = parse_hub_publish(&s) {
            parsed += 1;
            assert_eq!(parse_hub_publish(&v.to_topic()).as_ref(), Ok(&v), "{s}");
        }
        if let Ok(v) = parse_subscription(&s) {
            parsed += 1;
            assert_eq!(parse_subscription(&v.to_filter()).as_ref(), Ok(&v), "{s}");
        }
        if let Ok(v) = ModuleInput::parse(&s) {
            assert_eq!(ModuleInput::parse(&v.to_topic()).as_ref(), Ok(&v), "{s}");
        }
        if let Ok(v) = MqttUsername::parse(&s) {
            parsed += 1;
            assert_eq!(MqttUsername::parse(&v.format()).as_ref(), Ok(&v), "{s}");
        }
    }
    assert!(parsed > 500, "mutations too destructive: {parsed}");
}
