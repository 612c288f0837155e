import { join } from 'node:path';
import { DiskStore } from '../../proxy/store/disk.js';
import { storeContract } from '../contract/store-contract.js';
import { tempDir } from '../helpers/tempdir.js';

let count = 0;
const root = tempDir('lacquer-disk-contract-');

storeContract('disk tier', (options) => new DiskStore({ ...options, dir: join(root, String(count++)), maxObjectSize: options.maxSize }));
