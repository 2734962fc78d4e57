// Checks a Home Assistant MQTT discovery message the way Home Assistant reads it
// (https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery): abbreviations expanded (the
// subset of homeassistant/components/mqtt/abbreviations.py that sensors and binary sensors use), `~`
// expanded, the topic format, the options each platform knows, the required keys, and the device,
// origin and availability mappings. Returns the expanded payload, or throws naming every problem.

const ABBREVIATIONS: Record<string, string> = {
  avty: 'availability',
  avty_mode: 'availability_mode',
  avty_t: 'availability_topic',
  avty_tpl: 'availability_template',
  dev: 'device',
  dev_cla: 'device_class',
  def_ent_id: 'default_entity_id',
  en: 'enabled_by_default',
  ent_cat: 'entity_category',
  ent_pic: 'entity_picture',
  exp_aft: 'expire_after',
  frc_upd: 'force_update',
  ic: 'icon',
  json_attr_t: 'json_attributes_topic',
  json_attr_tpl: 'json_attributes_template',
  o: 'origin',
  obj_id: 'object_id',
  off_dly: 'off_delay',
  pl_avail: 'payload_available',
  pl_not_avail: 'payload_not_available',
  pl_off: 'payload_off',
  pl_on: 'payload_on',
  stat_cla: 'state_class',
  stat_t: 'state_topic',
  uniq_id: 'unique_id',
  unit_of_meas: 'unit_of_measurement',
  val_tpl: 'value_template',
  sug_dsp_prc: 'suggested_display_precision',
  p: 'platform',
};
const DEVICE_ABBREVIATIONS: Record<string, string> = {
  cns: 'connections',
  ids: 'identifiers',
  name: 'name',
  mf: 'manufacturer',
  mdl: 'model',
  mdl_id: 'model_id',
  hw: 'hw_version',
  sw: 'sw_version',
  sa: 'suggested_area',
  sn: 'serial_number',
  cu: 'configuration_url',
  via_device: 'via_device',
};
const ORIGIN_ABBREVIATIONS: Record<string, string> = { name: 'name', sw: 'sw_version', url: 'support_url' };
const AVAILABILITY_ABBREVIATIONS: Record<string, string> = { t: 'topic', pl_avail: 'payload_available', pl_not_avail: 'payload_not_available', val_tpl: 'value_template' };

const COMMON_OPTIONS = [
  'availability', 'availability_mode', 'availability_template', 'availability_topic', 'device', 'default_entity_id', 'enabled_by_default', 'encoding',
  'entity_category', 'entity_picture', 'expire_after', 'force_update', 'icon', 'json_attributes_template', 'json_attributes_topic', 'name', 'object_id',
  'origin', 'payload_available', 'payload_not_available', 'platform', 'qos', 'state_topic', 'unique_id', 'value_template',
];
const PLATFORM_OPTIONS: Record<string, string[]> = {
  sensor: [...COMMON_OPTIONS, 'device_class', 'state_class', 'unit_of_measurement', 'suggested_display_precision', 'last_reset_value_template', 'options'],
  binary_sensor: [...COMMON_OPTIONS, 'device_class', 'off_delay', 'payload_off', 'payload_on'],
};
const REQUIRED: Record<string, string[]> = { sensor: ['state_topic'], binary_sensor: ['state_topic'] };
/** Binary sensor device classes (homeassistant/components/binary_sensor BinarySensorDeviceClass). */
const BINARY_SENSOR_CLASSES = new Set([
  'battery', 'battery_charging', 'carbon_monoxide', 'cold', 'connectivity', 'door', 'garage_door', 'gas', 'heat', 'light', 'lock', 'moisture', 'motion',
  'moving', 'occupancy', 'opening', 'plug', 'power', 'presence', 'problem', 'running', 'safety', 'smoke', 'sound', 'tamper', 'update', 'vibration', 'window',
]);
const ID = /^[a-zA-Z0-9_-]+$/;

export interface ExpandedDiscovery {
  component: string;
  nodeId: string | null;
  objectId: string;
  payload: Record<string, unknown>;
}

const expandKeys = (o: Record<string, unknown>, table: Record<string, string>): Record<string, unknown> =>
  Object.fromEntries(Object.entries(o).map(([k, v]) => [table[k] ?? k, v]));

export function checkDiscovery(discoveryPrefix: string, topic: string, text: string): ExpandedDiscovery {
  const problems: string[] = [];
  const m = new RegExp(`^${discoveryPrefix}/([^/]+)/(?:([^/]+)/)?([^/]+)/config$`).exec(topic);
  if (!m) throw new Error(`${topic}: not <discovery_prefix>/<component>/[<node_id>/]<object_id>/config`);
  const [, component = '', nodeId, objectId = ''] = m;
  if (!PLATFORM_OPTIONS[component]) problems.push(`unsupported component ${component}`);
  if (nodeId !== undefined && !ID.test(nodeId)) problems.push(`node_id ${nodeId} has characters outside [a-zA-Z0-9_-]`);
  if (!ID.test(objectId)) problems.push(`object_id ${objectId} has characters outside [a-zA-Z0-9_-]`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`${topic}: payload is not JSON: ${(err as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${topic}: payload is not a JSON dictionary`);
  const payload = expandKeys(raw as Record<string, unknown>, ABBREVIATIONS);
  const base = payload['~'];
  delete payload['~'];
  if (typeof base === 'string') {
    for (const [k, v] of Object.entries(payload)) {
      if (k.endsWith('_topic') && typeof v === 'string') payload[k] = v.startsWith('~') ? base + v.slice(1) : v.endsWith('~') ? v.slice(0, -1) + base : v;
    }
  }
  const allowed = new Set(PLATFORM_OPTIONS[component] ?? []);
  for (const k of Object.keys(payload)) if (!allowed.has(k)) problems.push(`unknown option ${k} for ${component}`);
  for (const k of REQUIRED[component] ?? []) if (typeof payload[k] !== 'string' || (payload[k] as string).length === 0) problems.push(`required option ${k} missing`);
  for (const [k, v] of Object.entries(payload)) if (k.endsWith('_topic') && (typeof v !== 'string' || /[+#]/.test(v))) problems.push(`${k} is not a publishable topic: ${String(v)}`);
  if (payload.qos !== undefined && ![0, 1, 2].includes(payload.qos as number)) problems.push(`qos ${String(payload.qos)}`);
  if (component === 'binary_sensor' && payload.device_class !== undefined && !BINARY_SENSOR_CLASSES.has(payload.device_class as string)) problems.push(`binary_sensor device_class ${String(payload.device_class)} is not one Home Assistant knows`);
  if (payload.availability !== undefined && payload.availability_topic !== undefined) problems.push('availability and availability_topic must not be used together');
  if (payload.availability !== undefined) {
    if (!Array.isArray(payload.availability) || payload.availability.length === 0) problems.push('availability must be a non-empty list');
    else {
      payload.availability = payload.availability.map((a: unknown, i: number) => {
        const e = expandKeys(a as Record<string, unknown>, AVAILABILITY_ABBREVIATIONS);
        if (typeof e.topic !== 'string') problems.push(`availability[${i}].topic is required`);
        for (const k of Object.keys(e)) if (!Object.values(AVAILABILITY_ABBREVIATIONS).includes(k)) problems.push(`availability[${i}]: unknown option ${k}`);
        return e;
      });
    }
  }
  if (payload.device !== undefined) {
    const d = expandKeys(payload.device as Record<string, unknown>, DEVICE_ABBREVIATIONS);
    payload.device = d;
    for (const k of Object.keys(d)) if (!Object.values(DEVICE_ABBREVIATIONS).includes(k)) problems.push(`device: unknown option ${k}`);
    const ids = d.identifiers;
    const hasIds = typeof ids === 'string' || (Array.isArray(ids) && ids.length > 0 && ids.every((x) => typeof x === 'string'));
    if (!hasIds && d.connections === undefined) problems.push('device needs identifiers or connections');
    if (typeof payload.unique_id !== 'string') problems.push('a device needs unique_id on the entity');
  }
  if (payload.origin !== undefined) {
    const o = expandKeys(payload.origin as Record<string, unknown>, ORIGIN_ABBREVIATIONS);
    payload.origin = o;
    for (const k of Object.keys(o)) if (!Object.values(ORIGIN_ABBREVIATIONS).includes(k)) problems.push(`origin: unknown option ${k}`);
    if (typeof o.name !== 'string' || o.name.length === 0) problems.push('origin.name is required');
  }
  if (problems.length) throw new Error(`${topic}: ${problems.join('; ')}`);
  return { component, nodeId: nodeId ?? null, objectId, payload };
}
