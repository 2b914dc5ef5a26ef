/** What the downloads route (GET /downloads/:token) needs from the Orders service. */
export interface DownloadsApi {
  /**
   * Checks the signed token, counts one use and returns the ebook's bytes. NOT_FOUND for an
   * unknown or forged link, FORBIDDEN when it expired or its order was refunded,
   * LIMIT_REACHED when its downloads are used up.
   */
  open(token: string): Promise<{ data: Buffer; contentType: string; filename: string }>;
}
