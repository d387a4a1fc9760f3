-- Stands in for `rails db:migrate` in tests: the books table as the shopapi's db/schema.rb
-- (demo-app-bookstore) defines it. IF NOT EXISTS, as a second migrate changes nothing.
CREATE TABLE IF NOT EXISTS books (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  title VARCHAR(255),
  description TEXT,
  created_at DATETIME NOT NULL,
  updated_at DATETIME NOT NULL,
  image_url VARCHAR(255),
  price DECIMAL(5, 2)
) ENGINE=InnoDB DEFAULT CHARSET=latin1;
