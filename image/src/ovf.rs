//! The OVF 1.0 descriptor (DMTF DSP0243 1.0, the version vSphere, Workstation
//! and VirtualBox all import): written from an [`OvfSpec`], and read back
//! and checked by [`check`] (well-formed XML, the OVF envelope namespace,
//! every reference resolved: disk to file, hard disk item to disk, item to
//! its controller).
//!
//! The virtual machine it declares: 4 vCPU, 2 GiB of memory (the appliance
//! runs in 256 MiB; the rest is the cache's 40 % share), one VMXNET3 adapter,
//! the disk on an LSI Logic SAS controller, an IDE CD-ROM drive for the OVF
//! environment (`ovf:transport="iso"`), hardware family vmx-13 (ESXi 6.5
//! and later, up to 8), guest type "Other 3.x or later Linux (64-bit)". Its
//! `ProductSection` carries the first-boot settings as user-configurable
//! properties whose keys are the kernel command line seed's
//! (`gateway.net.mode`, ...), so PID 1 reads both the same way.

use std::collections::HashMap;

use gateway_config::KeyInfo;
use thiserror::Error;

pub const OVF_NS: &str = "http://schemas.dmtf.org/ovf/envelope/1";
pub const RASD_NS: &str =
    "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData";
pub const VSSD_NS: &str =
    "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData";
pub const VMW_NS: &str = "http://www.vmware.com/schema/ovf";
/// The disk format URI vSphere requires in an OVF package.
pub const STREAM_OPTIMIZED: &str =
    "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized";
/// ESXi 6.5's hardware version, which ESXi 6.5 to 8 all run.
pub const HARDWARE_FAMILY: &str = "vmx-13";
/// vSphere's guest identifier: "Other 3.x or later Linux (64-bit)", known to
/// ESXi 6.5 and later (the "4.x", "5.x" and "6.x" ones came later).
pub const VMW_OS_TYPE: &str = "other3xLinux64Guest";
/// CIM_OperatingSystem type 101: "Linux 64-Bit".
pub const CIM_OS_ID: u32 = 101;
pub const DEFAULT_CPUS: u32 = 4;
/// Default memory: the appliance itself runs in 256 MiB (tested); the cache
/// keeps agent downloads in 40 % of RAM, about 800 MiB here. QGS asks for
/// 16 GB because it runs containers; this needs none of that.
pub const DEFAULT_MEMORY_MIB: u32 = 2048;

/// CIM resource types (DSP1041 / CIM_ResourceAllocationSettingData).
pub mod resource {
    pub const PROCESSOR: u32 = 3;
    pub const MEMORY: u32 = 4;
    pub const IDE_CONTROLLER: u32 = 5;
    pub const SCSI_CONTROLLER: u32 = 6;
    pub const ETHERNET: u32 = 10;
    pub const CD_DRIVE: u32 = 15;
    pub const DISK: u32 = 17;
}

/// The `ProductSection`'s properties: the configuration keys that carry
/// an OVF label in the key table (gateway_config::KEYS), in its order,
/// which is the order vSphere shows them.
fn properties() -> impl Iterator<Item = &'static KeyInfo> {
    gateway_config::KEYS
        .iter()
        .filter(|k| k.ovf_label.is_some())
}

/// What the descriptor describes.
#[derive(Debug, Clone)]
pub struct OvfSpec {
    /// The virtual machine's name (`gateway`).
    pub name: String,
    pub product: String,
    pub vendor: String,
    pub version: String,
    /// The VMDK's name inside the package and its size in bytes.
    pub disk_file: String,
    pub disk_file_size: u64,
    /// The disk's virtual size in bytes (a whole number of MiB).
    pub capacity: u64,
    /// Bytes of the disk that hold data.
    pub populated: u64,
    pub cpus: u32,
    pub memory_mib: u32,
}

/// Escapes text for XML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// One `<Item>` of the hardware section; the `rasd:` elements must come in
/// the schema's (alphabetical) order, which this list keeps.
fn item(fields: &[(&str, String)]) -> String {
    let mut s = String::from("      <Item>\n");
    for (name, value) in fields {
        s.push_str(&format!(
            "        <rasd:{name}>{}</rasd:{name}>\n",
            escape(value)
        ));
    }
    s.push_str("      </Item>\n");
    s
}

fn property(k: &KeyInfo) -> String {
    let default = k.default_text();
    let qualifiers = if k.choices.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = k.choices.iter().map(|c| format!("\"{c}\"")).collect();
        format!(
            " ovf:qualifiers=\"{}\"",
            escape(&format!("ValueMap{{{}}}", list.join(",")))
        )
    };
    let empty = if default.is_empty() {
        " Leave empty for the default."
    } else {
        ""
    };
    format!(
        "      <Property ovf:key=\"gateway.{key}\" ovf:type=\"string\"{qualifiers} ovf:userConfigurable=\"true\" ovf:value=\"{default}\">\n\
         \x20       <Label>{label}</Label>\n\
         \x20       <Description>{key}: {rule}.{empty} Read at first boot only; later, change it at the console or with gatewayctl.</Description>\n\
         \x20     </Property>\n",
        key = escape(k.name),
        default = escape(&default),
        label = escape(k.ovf_label.unwrap_or(k.name)),
        rule = escape(k.rule),
    )
}

/// The descriptor's text.
pub fn descriptor(spec: &OvfSpec) -> String {
    use resource::*;
    let name = escape(&spec.name);
    let mut hw = String::new();
    hw.push_str(&item(&[
        ("AllocationUnits", "hertz * 10^6".into()),
        ("Description", "Number of virtual CPUs".into()),
        ("ElementName", format!("{} virtual CPU(s)", spec.cpus)),
        ("InstanceID", "1".into()),
        ("ResourceType", PROCESSOR.to_string()),
        ("VirtualQuantity", spec.cpus.to_string()),
    ]));
    hw.push_str(&item(&[
        ("AllocationUnits", "byte * 2^20".into()),
        ("Description", "Memory size".into()),
        ("ElementName", format!("{} MB of memory", spec.memory_mib)),
        ("InstanceID", "2".into()),
        ("ResourceType", MEMORY.to_string()),
        ("VirtualQuantity", spec.memory_mib.to_string()),
    ]));
    hw.push_str(&item(&[
        ("Address", "0".into()),
        ("Description", "SCSI Controller".into()),
        ("ElementName", "SCSI Controller 0".into()),
        ("InstanceID", "3".into()),
        ("ResourceSubType", "lsilogicsas".into()),
        ("ResourceType", SCSI_CONTROLLER.to_string()),
    ]));
    hw.push_str(&item(&[
        ("Address", "0".into()),
        ("Description", "IDE Controller".into()),
        ("ElementName", "IDE Controller 0".into()),
        ("InstanceID", "4".into()),
        ("ResourceType", IDE_CONTROLLER.to_string()),
    ]));
    hw.push_str(&item(&[
        ("AddressOnParent", "0".into()),
        ("ElementName", "Hard Disk 1".into()),
        ("HostResource", "ovf:/disk/vmdisk1".into()),
        ("InstanceID", "5".into()),
        ("Parent", "3".into()),
        ("ResourceType", DISK.to_string()),
    ]));
    hw.push_str(&item(&[
        ("AddressOnParent", "0".into()),
        ("AutomaticAllocation", "false".into()),
        (
            "Description",
            "CD-ROM drive: the OVF environment (ovf-env.xml) at first boot".into(),
        ),
        ("ElementName", "CD/DVD Drive 1".into()),
        ("InstanceID", "6".into()),
        ("Parent", "4".into()),
        ("ResourceType", CD_DRIVE.to_string()),
    ]));
    hw.push_str(&item(&[
        ("AddressOnParent", "7".into()),
        ("AutomaticAllocation", "true".into()),
        ("Connection", "VM Network".into()),
        (
            "Description",
            "VmxNet3 ethernet adapter on \"VM Network\"".into(),
        ),
        ("ElementName", "Network adapter 1".into()),
        ("InstanceID", "7".into()),
        ("ResourceSubType", "VmxNet3".into()),
        ("ResourceType", ETHERNET.to_string()),
    ]));
    let properties: String = properties().map(property).collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- Gateway appliance {version}: OVF 1.0 descriptor written by gateway-image -->
<Envelope xmlns="{OVF_NS}" xmlns:ovf="{OVF_NS}" xmlns:rasd="{RASD_NS}" xmlns:vssd="{VSSD_NS}" xmlns:vmw="{VMW_NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>
    <File ovf:href="{disk_file}" ovf:id="file1" ovf:size="{disk_file_size}"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="{capacity_mib}" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="{STREAM_OPTIMIZED}" ovf:populatedSize="{populated}"/>
  </DiskSection>
  <NetworkSection>
    <Info>The list of logical networks</Info>
    <Network ovf:name="VM Network">
      <Description>The network the gateway serves agents on</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="{name}">
    <Info>A virtual machine</Info>
    <Name>{name}</Name>
    <AnnotationSection>
      <Info>A human-readable annotation</Info>
      <Annotation>{product} {version}: proxy and cache for endpoint agents. Console on the VM's screen; settings below apply at first boot.</Annotation>
    </AnnotationSection>
    <OperatingSystemSection ovf:id="{CIM_OS_ID}" vmw:osType="{VMW_OS_TYPE}">
      <Info>The kind of installed guest operating system</Info>
      <Description>Linux 6.12 (64-bit), gateway appliance</Description>
    </OperatingSystemSection>
    <VirtualHardwareSection ovf:transport="iso">
      <Info>Virtual hardware requirements</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>{name}</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>{HARDWARE_FAMILY}</vssd:VirtualSystemType>
      </System>
{hw}    </VirtualHardwareSection>
    <ProductSection ovf:required="false">
      <Info>First-boot settings (the same keys as gateway.KEY=VALUE on the kernel command line)</Info>
      <Product>{product}</Product>
      <Vendor>{vendor}</Vendor>
      <Version>{version}</Version>
      <FullVersion>{version}</FullVersion>
      <Category>Network</Category>
{properties}    </ProductSection>
  </VirtualSystem>
</Envelope>
"#,
        version = escape(&spec.version),
        product = escape(&spec.product),
        vendor = escape(&spec.vendor),
        disk_file = escape(&spec.disk_file),
        disk_file_size = spec.disk_file_size,
        capacity_mib = spec.capacity >> 20,
        populated = spec.populated,
    )
}

/// A `<File>` of the References section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRef {
    pub id: String,
    pub href: String,
    pub size: Option<u64>,
}

/// A `<Disk>` of the DiskSection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskRef {
    pub id: String,
    pub file_ref: String,
    /// Bytes.
    pub capacity: u64,
    pub format: String,
}

/// What [`check`] read from a descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OvfInfo {
    pub files: Vec<FileRef>,
    pub disks: Vec<DiskRef>,
    pub hardware_family: String,
    pub transport: Option<String>,
    pub cpus: u64,
    pub memory_mib: u64,
    pub nic_types: Vec<String>,
    pub controllers: Vec<String>,
    pub product: Option<String>,
    pub version: Option<String>,
    /// `ovf:key` = `ovf:value` of each property.
    pub properties: Vec<(String, String)>,
}

#[derive(Debug, Error)]
pub enum OvfError {
    #[error("OVF descriptor is not well-formed XML: {0}")]
    Xml(String),
    #[error("OVF descriptor: {0}")]
    Invalid(String),
}

fn invalid<T>(m: impl Into<String>) -> Result<T, OvfError> {
    Err(OvfError::Invalid(m.into()))
}

/// Bytes per unit of `ovf:capacityAllocationUnits` (DSP0004 programmatic
/// units: `byte`, `byte * 2^N`, `byte * 10^N`).
pub fn allocation_units(units: &str) -> Option<u64> {
    let u: String = units.chars().filter(|c| !c.is_whitespace()).collect();
    if u == "byte" {
        return Some(1);
    }
    let rest = u.strip_prefix("byte*")?;
    let (base, exp) = rest.split_once('^')?;
    let exp: u32 = exp.parse().ok()?;
    match base {
        "2" => 1u64.checked_shl(exp).filter(|_| exp < 64),
        "10" => 10u64.checked_pow(exp),
        _ => None,
    }
}

/// The first child element `ns:name` of `n`.
fn child<'a, 'i>(
    n: roxmltree::Node<'a, 'i>,
    ns: &str,
    name: &str,
) -> Option<roxmltree::Node<'a, 'i>> {
    n.children().find(|c| c.has_tag_name((ns, name)))
}

/// Parses and checks a descriptor on its own (the package's files are
/// checked against it by the caller).
pub fn check(xml: &str) -> Result<OvfInfo, OvfError> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| OvfError::Xml(e.to_string()))?;
    let root = doc.root_element();
    if !root.has_tag_name((OVF_NS, "Envelope")) {
        return invalid(format!(
            "the root element is {:?}, not Envelope in the OVF 1.x namespace {OVF_NS}",
            root.tag_name().name()
        ));
    }
    let ovf = |n: roxmltree::Node, a: &str| n.attribute((OVF_NS, a)).map(str::to_string);

    let mut files = Vec::new();
    let refs = child(root, OVF_NS, "References")
        .ok_or_else(|| OvfError::Invalid("no References section".into()))?;
    for f in refs.children().filter(|c| c.has_tag_name((OVF_NS, "File"))) {
        let (Some(id), Some(href)) = (ovf(f, "id"), ovf(f, "href")) else {
            return invalid("a File without ovf:id or ovf:href");
        };
        if href.contains('/') || href.contains("..") {
            return invalid(format!("File {id} href {href:?} is not a plain file name"));
        }
        let size = match ovf(f, "size") {
            Some(s) => Some(
                s.parse()
                    .map_err(|_| OvfError::Invalid(format!("File {id} size {s:?}")))?,
            ),
            None => None,
        };
        if files.iter().any(|x: &FileRef| x.id == id || x.href == href) {
            return invalid(format!("File {id} ({href}) listed twice"));
        }
        files.push(FileRef { id, href, size });
    }

    let mut disks = Vec::new();
    if let Some(ds) = child(root, OVF_NS, "DiskSection") {
        for d in ds.children().filter(|c| c.has_tag_name((OVF_NS, "Disk"))) {
            let (Some(id), Some(cap)) = (ovf(d, "diskId"), ovf(d, "capacity")) else {
                return invalid("a Disk without ovf:diskId or ovf:capacity");
            };
            let units = ovf(d, "capacityAllocationUnits").unwrap_or_else(|| "byte".into());
            let unit = allocation_units(&units)
                .ok_or_else(|| OvfError::Invalid(format!("Disk {id}: capacity units {units:?}")))?;
            let capacity = cap
                .parse::<u64>()
                .ok()
                .and_then(|c| c.checked_mul(unit))
                .ok_or_else(|| OvfError::Invalid(format!("Disk {id}: capacity {cap:?}")))?;
            let file_ref = ovf(d, "fileRef").unwrap_or_default();
            if !files.iter().any(|f| f.id == file_ref) {
                return invalid(format!(
                    "Disk {id} refers to file {file_ref:?}, which References does not list"
                ));
            }
            disks.push(DiskRef {
                id,
                file_ref,
                capacity,
                format: ovf(d, "format").unwrap_or_default(),
            });
        }
    }

    let vs = child(root, OVF_NS, "VirtualSystem")
        .ok_or_else(|| OvfError::Invalid("no VirtualSystem".into()))?;
    if child(vs, OVF_NS, "OperatingSystemSection").is_none() {
        return invalid("no OperatingSystemSection");
    }
    let hw = child(vs, OVF_NS, "VirtualHardwareSection")
        .ok_or_else(|| OvfError::Invalid("no VirtualHardwareSection".into()))?;
    let hardware_family = child(hw, OVF_NS, "System")
        .and_then(|s| child(s, VSSD_NS, "VirtualSystemType"))
        .and_then(|t| t.text())
        .map(|t| t.trim().to_string())
        .ok_or_else(|| OvfError::Invalid("no vssd:VirtualSystemType".into()))?;

    let rasd = |n: roxmltree::Node, name: &str| {
        child(n, RASD_NS, name)
            .and_then(|e| e.text())
            .map(|t| t.trim().to_string())
    };
    let items: Vec<_> = hw
        .children()
        .filter(|c| c.has_tag_name((OVF_NS, "Item")))
        .collect();
    let mut types: HashMap<String, u32> = HashMap::new();
    for it in &items {
        let Some(id) = rasd(*it, "InstanceID") else {
            return invalid("an Item without rasd:InstanceID");
        };
        let kind = rasd(*it, "ResourceType")
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| OvfError::Invalid(format!("Item {id}: no numeric rasd:ResourceType")))?;
        if types.insert(id.clone(), kind).is_some() {
            return invalid(format!("InstanceID {id} used twice"));
        }
    }
    let (mut cpus, mut memory_mib) = (0, 0);
    let (mut nic_types, mut controllers) = (Vec::new(), Vec::new());
    let mut disks_used = Vec::new();
    for it in &items {
        let id = rasd(*it, "InstanceID").unwrap_or_default();
        let kind = types[&id];
        let quantity = || {
            rasd(*it, "VirtualQuantity")
                .and_then(|q| q.parse::<u64>().ok())
                .ok_or_else(|| OvfError::Invalid(format!("Item {id}: no rasd:VirtualQuantity")))
        };
        match kind {
            resource::PROCESSOR => cpus = quantity()?,
            resource::MEMORY => {
                let units = rasd(*it, "AllocationUnits").unwrap_or_else(|| "byte".into());
                let unit = allocation_units(&units)
                    .ok_or_else(|| OvfError::Invalid(format!("memory units {units:?}")))?;
                memory_mib = (quantity()? * unit) >> 20;
            }
            resource::ETHERNET => nic_types.push(rasd(*it, "ResourceSubType").unwrap_or_default()),
            resource::SCSI_CONTROLLER | resource::IDE_CONTROLLER => {
                controllers.push(rasd(*it, "ResourceSubType").unwrap_or_else(|| "ide".into()))
            }
            _ => {}
        }
        if let Some(parent) = rasd(*it, "Parent") {
            match types.get(&parent) {
                Some(&(resource::IDE_CONTROLLER | resource::SCSI_CONTROLLER)) => {}
                Some(_) => {
                    return invalid(format!("Item {id}: parent {parent} is not a controller"))
                }
                None => return invalid(format!("Item {id}: parent {parent} does not exist")),
            }
        }
        if kind == resource::DISK {
            let host = rasd(*it, "HostResource").unwrap_or_default();
            let disk = host
                .strip_prefix("ovf:/disk/")
                .or_else(|| host.strip_prefix("/disk/"))
                .ok_or_else(|| {
                    OvfError::Invalid(format!(
                        "Item {id}: HostResource {host:?} is not ovf:/disk/<id>"
                    ))
                })?;
            if !disks.iter().any(|d| d.id == disk) {
                return invalid(format!(
                    "Item {id}: HostResource {host} names no Disk of the DiskSection"
                ));
            }
            if rasd(*it, "Parent").is_none() {
                return invalid(format!(
                    "hard disk item {id} has no controller (rasd:Parent)"
                ));
            }
            disks_used.push(disk.to_string());
        }
    }
    if cpus == 0 || memory_mib == 0 {
        return invalid("no processor or memory item");
    }
    for d in &disks {
        if !disks_used.contains(&d.id) {
            return invalid(format!("Disk {} is attached to no controller", d.id));
        }
    }

    let mut properties = Vec::new();
    let (mut product, mut version) = (None, None);
    for ps in vs
        .children()
        .filter(|c| c.has_tag_name((OVF_NS, "ProductSection")))
    {
        let text = |name| {
            child(ps, OVF_NS, name)
                .and_then(|e| e.text())
                .map(str::to_string)
        };
        product = product.or(text("Product"));
        version = version.or(text("Version"));
        for p in ps
            .children()
            .filter(|c| c.has_tag_name((OVF_NS, "Property")))
        {
            let Some(key) = ovf(p, "key") else {
                return invalid("a Property without ovf:key");
            };
            if ovf(p, "type").is_none() {
                return invalid(format!("Property {key} has no ovf:type"));
            }
            if properties.iter().any(|(k, _)| k == &key) {
                return invalid(format!("Property {key} defined twice"));
            }
            properties.push((key, ovf(p, "value").unwrap_or_default()));
        }
    }
    Ok(OvfInfo {
        files,
        disks,
        hardware_family,
        transport: ovf(hw, "transport"),
        cpus,
        memory_mib,
        nic_types,
        controllers,
        product,
        version,
        properties,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> OvfSpec {
        OvfSpec {
            name: "gateway".into(),
            product: "Gateway appliance".into(),
            vendor: "Gateway <project> & co".into(),
            version: "0.1.0".into(),
            disk_file: "gateway-0.1.0-disk1.vmdk".into(),
            disk_file_size: 12_345_678,
            capacity: 40 << 30,
            populated: 80 << 20,
            cpus: DEFAULT_CPUS,
            memory_mib: DEFAULT_MEMORY_MIB,
        }
    }

    #[test]
    fn descriptor_reads_back() {
        let xml = descriptor(&spec());
        let info = check(&xml).unwrap();
        assert_eq!(
            info.files,
            vec![FileRef {
                id: "file1".into(),
                href: "gateway-0.1.0-disk1.vmdk".into(),
                size: Some(12_345_678)
            }]
        );
        assert_eq!(info.disks.len(), 1);
        assert_eq!(info.disks[0].capacity, 40 << 30);
        assert_eq!(info.disks[0].format, STREAM_OPTIMIZED);
        assert_eq!(info.hardware_family, "vmx-13");
        assert_eq!(info.transport.as_deref(), Some("iso"));
        assert_eq!((info.cpus, info.memory_mib), (4, 2048));
        assert_eq!(info.nic_types, vec!["VmxNet3"]);
        assert_eq!(info.controllers, vec!["lsilogicsas", "ide"]);
        assert_eq!(info.product.as_deref(), Some("Gateway appliance"));
        assert_eq!(info.version.as_deref(), Some("0.1.0"));
        assert!(xml.contains("Gateway &lt;project&gt; &amp; co"));
        assert!(xml.contains(r#"vmw:osType="other3xLinux64Guest""#));
    }

    #[test]
    fn properties_are_the_seed_keys_with_their_defaults() {
        let info = check(&descriptor(&spec())).unwrap();
        let keys: Vec<&str> = info.properties.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "gateway.net.mode",
                "gateway.net.address",
                "gateway.net.gateway",
                "gateway.dns.servers",
                "gateway.dns.search",
                "gateway.ntp.servers"
            ]
        );
        for (key, value) in &info.properties {
            let k = gateway_config::key_info(key.strip_prefix("gateway.").unwrap())
                .unwrap_or_else(|| panic!("{key} is not a configuration key"));
            assert_eq!(*value, k.default_text(), "{key}");
        }
        assert!(descriptor(&spec())
            .contains(r#"ovf:qualifiers="ValueMap{&quot;dhcp&quot;,&quot;static&quot;,&quot;unconfigured&quot;}""#));
    }

    #[test]
    fn rasd_elements_are_in_schema_order() {
        // CIM_ResourceAllocationSettingData's schema is a sequence in
        // alphabetical order; ovftool refuses items out of it.
        let xml = descriptor(&spec());
        let doc = roxmltree::Document::parse(&xml).unwrap();
        for item in doc
            .descendants()
            .filter(|n| n.has_tag_name((OVF_NS, "Item")))
        {
            let names: Vec<&str> = item
                .children()
                .filter(|c| c.is_element())
                .map(|c| c.tag_name().name())
                .collect();
            let mut sorted = names.clone();
            sorted.sort();
            assert_eq!(names, sorted);
        }
    }

    #[test]
    fn broken_descriptors_are_named() {
        let xml = descriptor(&spec());
        let cases = [
            (xml.replace("</References>", ""), "well-formed"),
            (xml.replace(OVF_NS, "http://example.com/ovf"), "namespace"),
            (
                xml.replace("ovf:fileRef=\"file1\"", "ovf:fileRef=\"file9\""),
                "file9",
            ),
            (
                xml.replace("ovf:/disk/vmdisk1", "ovf:/disk/vmdisk2"),
                "names no Disk",
            ),
            (
                xml.replace(
                    "<rasd:Parent>3</rasd:Parent>",
                    "<rasd:Parent>9</rasd:Parent>",
                ),
                "does not exist",
            ),
            (
                xml.replace("byte * 2^20\" ovf:diskId", "furlongs\" ovf:diskId"),
                "units",
            ),
        ];
        for (bad, what) in cases {
            let e = check(&bad).unwrap_err().to_string();
            assert!(e.contains(what), "{what}: {e}");
        }
    }

    #[test]
    fn units() {
        assert_eq!(allocation_units("byte"), Some(1));
        assert_eq!(allocation_units("byte * 2^30"), Some(1 << 30));
        assert_eq!(allocation_units("byte*10^6"), Some(1_000_000));
        assert_eq!(allocation_units("bit"), None);
        assert_eq!(allocation_units("byte * 2^64"), None);
    }
}
