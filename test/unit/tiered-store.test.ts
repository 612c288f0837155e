import { join } from 'node:path';
import { TieredStore } from '../../proxy/store/tiered.js';
import { storeContract } from '../contract/store-contract.js';
import { tempDir } from '../helpers/tempdir.js';

let count = 0;
const root = tempDir('lacquer-tiered-contract-');

storeContract(
  'tiered store (memory over disk)',
  (options) =>
    new TieredStore({
      memory: { maxSize: options.maxSize, maxObjectSize: options.maxSize },
      disk: { dir: join(root, String(count++)), maxSize: options.maxSize, maxObjectSize: options.maxSize },
      maxVariants: options.maxVariants,
      clock: options.clock,
      listener: options.listener,
    }),
);
