<?xml version="1.0" encoding="utf-8"?>
<!-- The sandbox's synthetic catalogue (library/sandbox/catalogue.py generates the rows).

Rows are bulk-loaded with COPY from the CSV files that `dachs.up` writes to data/ next to this
file, before the indexes are built: row-by-row ingestion through a grammar took minutes for the
400,000 rows, COPY takes seconds. -->
<resource schema="sandbox" resdir="sandbox">
  <meta name="title">bosun sandbox synthetic catalogue</meta>
  <meta name="description">A seeded synthetic catalogue of objects and their detections
    over a 20 x 16 degree field, for testing TAP services.</meta>
  <meta name="creationDate">2024-06-01T00:00:00</meta>
  <meta name="subject">catalogs</meta>
  <meta name="creator.name">bosun</meta>

  <table id="objects" onDisk="True" adql="True" primary="objectId" mixin="//scs#q3cindex">
    <meta name="description">One row per object: position, fluxes and AB magnitudes in
      u g r i z y, and an extendedness flag.</meta>
    <column name="objectId" type="bigint" ucd="meta.id;meta.main" required="True"
      description="Object identifier"/>
    <column name="ra" type="double precision" unit="deg" ucd="pos.eq.ra;meta.main"
      description="Right ascension (ICRS)" verbLevel="1"/>
    <column name="dec" type="double precision" unit="deg" ucd="pos.eq.dec;meta.main"
      description="Declination (ICRS)" verbLevel="1"/>
    <column name="extendedness" type="smallint" ucd="src.class.starGalaxy"
      description="1 for extended sources, 0 for point sources" verbLevel="10">
      <values nullLiteral="-1"/>
    </column>
    <column name="u_flux" type="double precision" unit="nJy"
      ucd="phot.flux;em.opt" description="Flux in band u" verbLevel="15"/>
    <column name="u_fluxErr" type="double precision" unit="nJy"
      ucd="stat.error;phot.flux" description="Flux error in band u" verbLevel="20"/>
    <column name="u_mag" type="double precision" unit="mag"
      ucd="phot.mag" description="AB magnitude in band u" verbLevel="15"/>
    <column name="g_flux" type="double precision" unit="nJy"
      ucd="phot.flux;em.opt" description="Flux in band g" verbLevel="15"/>
    <column name="g_fluxErr" type="double precision" unit="nJy"
      ucd="stat.error;phot.flux" description="Flux error in band g" verbLevel="20"/>
    <column name="g_mag" type="double precision" unit="mag"
      ucd="phot.mag" description="AB magnitude in band g" verbLevel="15"/>
    <column name="r_flux" type="double precision" unit="nJy"
      ucd="phot.flux;em.opt" description="Flux in band r" verbLevel="15"/>
    <column name="r_fluxErr" type="double precision" unit="nJy"
      ucd="stat.error;phot.flux" description="Flux error in band r" verbLevel="20"/>
    <column name="r_mag" type="double precision" unit="mag"
      ucd="phot.mag" description="AB magnitude in band r" verbLevel="15"/>
    <column name="i_flux" type="double precision" unit="nJy"
      ucd="phot.flux;em.opt" description="Flux in band i" verbLevel="15"/>
    <column name="i_fluxErr" type="double precision" unit="nJy"
      ucd="stat.error;phot.flux" description="Flux error in band i" verbLevel="20"/>
    <column name="i_mag" type="double precision" unit="mag"
      ucd="phot.mag" description="AB magnitude in band i" verbLevel="15"/>
    <column name="z_flux" type="double precision" unit="nJy"
      ucd="phot.flux;em.opt" description="Flux in band z" verbLevel="15"/>
    <column name="z_fluxErr" type="double precision" unit="nJy"
      ucd="stat.error;phot.flux" description="Flux error in band z" verbLevel="20"/>
    <column name="z_mag" type="double precision" unit="mag"
      ucd="phot.mag" description="AB magnitude in band z" verbLevel="15"/>
    <column name="y_flux" type="double precision" unit="nJy"
      ucd="phot.flux;em.opt" description="Flux in band y" verbLevel="15"/>
    <column name="y_fluxErr" type="double precision" unit="nJy"
      ucd="stat.error;phot.flux" description="Flux error in band y" verbLevel="20"/>
    <column name="y_mag" type="double precision" unit="mag"
      ucd="phot.mag" description="AB magnitude in band y" verbLevel="15"/>
  </table>

  <table id="sources" onDisk="True" adql="True" primary="sourceId" mixin="//scs#q3cindex">
    <meta name="description">Detections of the objects: a few per object, in one band
      each, at one epoch each.</meta>
    <foreignKey source="objectId" inTable="objects"/>
    <index columns="objectId"/>
    <column name="sourceId" type="bigint" ucd="meta.id;meta.main" required="True"
      description="Source identifier"/>
    <column name="objectId" type="bigint" ucd="meta.id" required="True"
      description="Identifier of the object detected"/>
    <column name="band" type="text" ucd="instr.bandpass" description="Band of the detection"/>
    <column name="mjd" type="double precision" unit="d" ucd="time.epoch"
      description="Epoch of the detection (MJD)"/>
    <column name="ra" type="double precision" unit="deg" ucd="pos.eq.ra;meta.main"
      description="Right ascension (ICRS)"/>
    <column name="dec" type="double precision" unit="deg" ucd="pos.eq.dec;meta.main"
      description="Declination (ICRS)"/>
    <column name="psfFlux" type="double precision" unit="nJy" ucd="phot.flux"
      description="PSF flux"/>
    <column name="psfFluxErr" type="double precision" unit="nJy" ucd="stat.error;phot.flux"
      description="PSF flux error"/>
  </table>

  <!-- Image metadata for the SIA v2 service (library/sandbox/images.py generates the rows):
  a native ObsCore-shaped table that DaCHS's //siap2 parameters query. -->
  <table id="images" onDisk="True" adql="True">
    <meta name="description">Metadata of the sandbox's (pixel-less) detector images, in
      ObsCore columns: footprint, band, time span, exposure.</meta>
    <FEED source="//obscore#obscore-columns"/>
    <index columns="s_region" method="GIST"/>
  </table>

  <data id="import">
    <make table="objects">
      <script type="preIndex" lang="python" name="bulk load objects">
        import os
        path = os.path.join(table.tableDef.rd.resdir, "data", table.tableDef.id + ".csv")
        columns = ", ".join(str(c.name) for c in table.tableDef.columns)
        with open(path) as f:
          table.connection.cursor().copy_expert(
            "COPY %s (%s) FROM STDIN WITH (FORMAT csv)" % (table.tableName, columns), f)
      </script>
    </make>
    <make table="sources">
      <script type="preIndex" lang="python" name="bulk load sources">
        import os
        path = os.path.join(table.tableDef.rd.resdir, "data", table.tableDef.id + ".csv")
        columns = ", ".join(str(c.name) for c in table.tableDef.columns)
        with open(path) as f:
          table.connection.cursor().copy_expert(
            "COPY %s (%s) FROM STDIN WITH (FORMAT csv)" % (table.tableName, columns), f)
      </script>
    </make>
  </data>
  <data id="import_images">
    <make table="images">
      <script type="preIndex" lang="python" name="bulk load images">
        import os
        path = os.path.join(table.tableDef.rd.resdir, "data", table.tableDef.id + ".csv")
        columns = ", ".join(str(c.name) for c in table.tableDef.columns)
        with open(path) as f:
          table.connection.cursor().copy_expert(
            "COPY %s (%s) FROM STDIN WITH (FORMAT csv)" % (table.tableName, columns), f)
      </script>
    </make>
  </data>

  <!-- SIA v2 over the images table: base URL .../sandbox/q/sia (capabilities list the
  siap2.xml query endpoint, which pyvo's SIA2Service finds there). -->
  <service id="sia" allowed="siap2.xml,form">
    <meta name="shortName">bosun sandbox SIA</meta>
    <meta name="sia.type">Pointed</meta>
    <meta name="testQuery.pos.ra">62</meta>
    <meta name="testQuery.pos.dec">-34</meta>
    <meta name="testQuery.size.ra">0.1</meta>
    <meta name="testQuery.size.dec">0.1</meta>
    <publish render="siap2.xml" sets="local"/>
    <dbCore queriedTable="images">
      <FEED source="//siap2#parameters"/>
    </dbCore>
  </service>
</resource>
