/*
 * Writes the orders bench's generated customers (ids from..to-1) as SSTables of
 * `<keyspace>.customers`, for Cassandra's own bulk loader (org.apache.cassandra.tools.BulkLoader,
 * "sstableloader") to stream into a running node. Cassandra's CQLSSTableWriter builds the
 * files in this process (no commitlog, no memtables, no compaction on the server), which is
 * what makes millions of rows take seconds instead of the tens of minutes CQL INSERTs take on
 * a small machine. The rows are added in token order (the writer's `sorted` mode), so it
 * streams them to disk without buffering and sorting them itself.
 * Run in source-file mode: java -cp "<cassandra lib>/*" CustomerSSTables.java
 *
 * args: <outputDir> <keyspace> <from> <to> <createdAtMs>
 * The table definition must match the Customers service's (src/storage/cassandra/store-customers.ts);
 * rows must match bench/scenarios/orders.ts customerId() and name.
 */
import java.io.File;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import org.apache.cassandra.dht.Murmur3Partitioner;
import org.apache.cassandra.io.sstable.CQLSSTableWriter;

public class CustomerSSTables {
  public static void main(String[] args) throws Exception {
    File dir = new File(args[0]);
    String ks = args[1];
    long from = Long.parseLong(args[2]);
    long to = Long.parseLong(args[3]);
    long createdAt = Long.parseLong(args[4]);
    dir.mkdirs();
    String schema = "CREATE TABLE " + ks + ".customers (customer_id text PRIMARY KEY, name text, default_address_id text, created_at bigint, updated_at bigint)";
    String insert = "INSERT INTO " + ks + ".customers (customer_id, name, created_at, updated_at) VALUES (?, ?, ?, ?)";
    CQLSSTableWriter writer = CQLSSTableWriter.builder()
        .inDirectory(dir.getPath())
        .forTable(schema)
        .using(insert)
        .sorted()
        .build();
    long started = System.nanoTime();
    int n = (int) (to - from);
    if (n >= (1 << 23)) throw new IllegalArgumentException("at most 8,388,607 rows per run");
    // Sort the rows by their partition's token: the top 41 bits of the token with the row's
    // index in the low 23 bits, then runs that share those 41 bits put in full-token order.
    long[] token = new long[n];
    long[] packed = new long[n];
    for (int k = 0; k < n; k++) {
      token[k] = Murmur3Partitioner.instance.getToken(java.nio.ByteBuffer.wrap(id(from + k).getBytes(StandardCharsets.UTF_8))).token;
      packed[k] = (token[k] & ~0x7FFFFFL) | k;
    }
    Arrays.sort(packed);
    for (int k = 1; k < n; k++) {
      for (int j = k; j > 0 && (packed[j] & ~0x7FFFFFL) == (packed[j - 1] & ~0x7FFFFFL) && token[(int) (packed[j] & 0x7FFFFF)] < token[(int) (packed[j - 1] & 0x7FFFFF)]; j--) {
        long t = packed[j]; packed[j] = packed[j - 1]; packed[j - 1] = t;
      }
    }
    System.err.printf("CustomerSSTables: %d rows sorted by token in %.1f s%n", n, (System.nanoTime() - started) / 1e9);
    for (int k = 0; k < n; k++) {
      long i = from + (packed[k] & 0x7FFFFF);
      writer.addRow(id(i), "Customer " + i, createdAt, createdAt);
    }
    writer.close();
    System.err.printf("CustomerSSTables: %d rows in %.1f s%n", to - from, (System.nanoTime() - started) / 1e9);
    System.exit(0);
  }

  static String id(long i) {
    String hex = Long.toHexString(i);
    return "01900000-0000-7000-8000-" + "000000000000".substring(hex.length()) + hex;
  }
}
