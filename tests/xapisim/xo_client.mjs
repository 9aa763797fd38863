// Drives XO's own XAPI client (npm xen-api@4.7.6, ISC) against the simulator:
// connect, build the object cache, follow events, report a snapshot and its hidden base copy
// when they appear, then the base copy's removal when the SM coalesces it.
// Usage: node xo_client.mjs <path to xen-api/index.mjs> <url> <password> <transport>
// Prints one JSON object per line: {"event":"cached",…}, {"event":"snapshot",…}, then
// {"event":"coalesced",…}.
import { pathToFileURL } from 'node:url'

const [, , modulePath, url, password, transport] = process.argv
const { createClient } = await import(pathToFileURL(modulePath).href)

const out = object => process.stdout.write(JSON.stringify(object) + '\n')
const timer = setTimeout(() => {
  out({ event: 'error', message: 'timed out after 60 s' })
  process.exit(2)
}, 60000)

const xapi = createClient({
  url,
  auth: { user: 'root', password },
  allowUnauthorized: true,
  transport,
})

const snapshotSeen = new Promise(resolve => {
  xapi.objects.on('add', objects => {
    for (const object of Object.values(objects)) {
      if (object.$type === 'VM' && object.is_a_snapshot) resolve(object)
    }
  })
})
// Resolves once the cache holds a VDI with this uuid (a base copy named by vhd-parent).
const vdiByUuid = uuid =>
  new Promise(resolve => {
    const look = () => {
      const found = Object.values(xapi.objects.all).find(o => o.$type === 'VDI' && o.uuid === uuid)
      if (found !== undefined) resolve(found)
      return found !== undefined
    }
    if (!look()) {
      const listener = () => {
        if (look()) xapi.objects.removeListener('add', listener)
      }
      xapi.objects.on('add', listener)
    }
  })
// Resolves when the cache drops the object with this $id (XO keys its cache by uuid).
const removed = id =>
  new Promise(resolve => {
    xapi.objects.on('remove', objects => {
      if (id in objects) resolve()
    })
  })

try {
  await xapi.connect()
  await xapi.objectsFetched
  const all = Object.values(xapi.objects.all)
  const count = type => all.filter(object => object.$type === type).length
  out({
    event: 'cached',
    pool: xapi.pool.name_label,
    poolRef: xapi.pool.$ref,
    vms: count('VM'),
    hosts: count('host'),
    vdis: count('VDI'),
    srs: count('SR'),
    types: [...new Set(all.map(object => object.$type))].sort(),
  })
  const snapshot = await snapshotSeen
  const task = await xapi.call('task.create', 'xo-task', 'from the xen-api client')
  // The snapshot's disk and the hidden base copy its vhd-parent names, both from the cache.
  const disk = snapshot.$VBDs.map(vbd => vbd.$VDI).find(vdi => vdi !== undefined)
  const base = await vdiByUuid(disk.sm_config['vhd-parent'])
  out({
    event: 'snapshot',
    ref: snapshot.$ref,
    name: snapshot.name_label,
    snapshotOf: snapshot.snapshot_of,
    isTemplate: snapshot.is_a_template,
    powerState: snapshot.power_state,
    memory: snapshot.memory_static_max,
    task,
    disk: disk.$ref,
    diskReadOnly: disk.read_only,
    baseCopy: { ref: base.$ref, uuid: base.uuid, managed: base.managed, readOnly: base.read_only },
  })
  await removed(base.$id)
  out({ event: 'coalesced', ref: base.$ref })
  await xapi.disconnect()
  clearTimeout(timer)
  process.exit(0)
} catch (error) {
  out({ event: 'error', message: String(error), code: error.code ?? null })
  process.exit(1)
}
