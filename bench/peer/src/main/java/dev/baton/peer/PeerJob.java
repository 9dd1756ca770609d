package dev.baton.peer;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import java.math.BigDecimal;
import java.math.RoundingMode;
import java.time.LocalDate;
import java.util.Map;
import javax.sql.DataSource;
import org.springframework.batch.core.BatchStatus;
import org.springframework.batch.core.configuration.annotation.EnableBatchProcessing;
import org.springframework.batch.core.configuration.annotation.EnableJdbcJobRepository;
import org.springframework.batch.core.job.Job;
import org.springframework.batch.core.job.JobExecution;
import org.springframework.batch.core.job.builder.JobBuilder;
import org.springframework.batch.core.job.parameters.JobParameters;
import org.springframework.batch.core.job.parameters.JobParametersBuilder;
import org.springframework.batch.core.launch.JobOperator;
import org.springframework.batch.core.repository.JobRepository;
import org.springframework.batch.core.step.Step;
import org.springframework.batch.core.step.builder.StepBuilder;
import org.springframework.batch.infrastructure.item.ItemProcessor;
import org.springframework.batch.infrastructure.item.database.JdbcBatchItemWriter;
import org.springframework.batch.infrastructure.item.database.builder.JdbcBatchItemWriterBuilder;
import org.springframework.batch.infrastructure.item.file.FlatFileItemReader;
import org.springframework.batch.infrastructure.item.file.builder.FlatFileItemReaderBuilder;
import org.springframework.batch.infrastructure.item.file.mapping.PassThroughFieldSetMapper;
import org.springframework.batch.infrastructure.item.file.transform.FieldSet;
import org.springframework.context.annotation.AnnotationConfigApplicationContext;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.core.io.FileSystemResource;
import org.springframework.jdbc.support.JdbcTransactionManager;

/**
 * The Spring Batch 6 side of bench/peer: CSV (FlatFileItemReader) → parse and convert
 * (ItemProcessor) → PostgreSQL (JdbcBatchItemWriter, batched and rewritten by the driver),
 * chunk 1000, JDBC JobRepository in the same database. Plain Spring, no Boot.
 *
 * <p>Arguments (system properties): peer.url (JDBC URL), peer.input, peer.table, peer.run
 * (the identifying parameter), peer.chunk. A launch with the parameters of a FAILED instance
 * restarts it, as CommandLineJobRunner would. The environment variable BENCH_FAIL_AT makes
 * the processor fail at that row id (the fail-at-90 % run). Prints one JSON line and exits
 * 0 when the execution COMPLETED, 1 otherwise.
 */
public final class PeerJob {

  /** Euro rates of the currencies in the generated CSV (the same as the Baton job's). */
  static final Map<String, BigDecimal> RATES =
      Map.of("EUR", new BigDecimal("1.00"), "USD", new BigDecimal("0.92"), "GBP", new BigDecimal("1.17"));

  /** One converted row of the target table. */
  public record Order(
      long id, String customer, BigDecimal amount, String currency, BigDecimal amountEur, LocalDate day) {}

  /** Types each field and converts the amount to EUR; fails at BENCH_FAIL_AT when set. */
  static final class Convert implements ItemProcessor<FieldSet, Order> {
    private final long failAt;

    Convert(long failAt) {
      this.failAt = failAt;
    }

    @Override
    public Order process(FieldSet f) {
      long id = Long.parseLong(f.readRawString(0));
      if (id == failAt) {
        throw new IllegalStateException("bench: failing at row " + id + " as asked");
      }
      BigDecimal amount = new BigDecimal(f.readRawString(2)).setScale(2, RoundingMode.HALF_EVEN);
      String currency = f.readRawString(3);
      BigDecimal eur = amount.multiply(RATES.get(currency)).setScale(2, RoundingMode.HALF_EVEN);
      return new Order(id, f.readRawString(1), amount, currency, eur, LocalDate.parse(f.readRawString(4)));
    }
  }

  @Configuration
  @EnableBatchProcessing
  @EnableJdbcJobRepository
  public static class Config {

    @Bean(destroyMethod = "close")
    public DataSource dataSource() {
      HikariConfig c = new HikariConfig();
      String url = System.getProperty("peer.url");
      c.setJdbcUrl(url + (url.contains("?") ? "&" : "?") + "reWriteBatchedInserts=true");
      c.setMaximumPoolSize(4);
      c.setMinimumIdle(1);
      return new HikariDataSource(c);
    }

    @Bean
    public JdbcTransactionManager transactionManager(DataSource dataSource) {
      return new JdbcTransactionManager(dataSource);
    }

    @Bean
    public FlatFileItemReader<FieldSet> reader() {
      return new FlatFileItemReaderBuilder<FieldSet>()
          .name("orders")
          .resource(new FileSystemResource(System.getProperty("peer.input")))
          .linesToSkip(1)
          .delimited()
          .names("id", "customer", "amount", "currency", "day")
          .fieldSetMapper(new PassThroughFieldSetMapper())
          .build();
    }

    @Bean
    public JdbcBatchItemWriter<Order> writer(DataSource dataSource) {
      String table = System.getProperty("peer.table");
      return new JdbcBatchItemWriterBuilder<Order>()
          .dataSource(dataSource)
          .sql("INSERT INTO " + table
              + " (id, customer, amount, currency, amount_eur, order_date) VALUES (?, ?, ?, ?, ?, ?)")
          .itemPreparedStatementSetter((o, ps) -> {
            ps.setLong(1, o.id());
            ps.setString(2, o.customer());
            ps.setBigDecimal(3, o.amount());
            ps.setString(4, o.currency());
            ps.setBigDecimal(5, o.amountEur());
            ps.setObject(6, o.day());
          })
          .build();
    }

    @Bean
    public Step load(JobRepository repository, JdbcTransactionManager tm,
        FlatFileItemReader<FieldSet> reader, JdbcBatchItemWriter<Order> writer) {
      String failAt = System.getenv().getOrDefault("BENCH_FAIL_AT", "");
      return new StepBuilder("load", repository)
          .<FieldSet, Order>chunk(Integer.getInteger("peer.chunk", 1000))
          .transactionManager(tm)
          .reader(reader)
          .processor(new Convert(failAt.isEmpty() ? -1 : Long.parseLong(failAt)))
          .writer(writer)
          .build();
    }

    @Bean
    public Job job(JobRepository repository, Step load) {
      return new JobBuilder("peer-import", repository).start(load).build();
    }
  }

  public static void main(String[] args) throws Exception {
    int code;
    try (var ctx = new AnnotationConfigApplicationContext(Config.class)) {
      JobOperator operator = ctx.getBean(JobOperator.class);
      JobParameters params = new JobParametersBuilder()
          .addLong("run", Long.getLong("peer.run"))
          .toJobParameters();
      JobExecution e = operator.start(ctx.getBean(Job.class), params);
      System.out.printf("{\"execution\": %d, \"status\": \"%s\"}%n", e.getId(), e.getStatus());
      code = e.getStatus() == BatchStatus.COMPLETED ? 0 : 1;
    }
    System.exit(code);
  }
}
