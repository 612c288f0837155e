import { MemoryStore } from '../../proxy/store/memory.js';
import { storeContract } from '../contract/store-contract.js';

storeContract('memory tier', (options) => new MemoryStore(options));
